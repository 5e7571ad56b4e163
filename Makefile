# lifeboat: `make` installs what is missing, builds and installs lifeboat, and
# runs its main job on this machine; `make test` runs the whole test suite.
# Both need root on Debian or Ubuntu (apt-get); see README.md.

PREFIX  ?= /usr/local
CARGO   ?= cargo
# The binary that is installed, packaged and put into rescue systems: a
# static build (musl), so one binary runs on every release (Debian 11's
# glibc 2.31 too) and on an old server on its worst day.
MUSL     = x86_64-unknown-linux-musl
BIN      = target/$(MUSL)/release/lifeboat

# What lifeboat uses on this machine: capture, rescue media, and the tools
# that go into the rescue system. linux-image-amd64 gives a kernel with
# modules to build rescue media from on machines booted from outside (VMs);
# shim-signed and grub-efi-amd64-signed let the media boot with Secure Boot.
RUNTIME_PKGS = util-linux fdisk mount e2fsprogs xfsprogs btrfs-progs dosfstools mtools \
	mdadm lvm2 thin-provisioning-tools cryptsetup-bin dmsetup efibootmgr iproute2 kmod \
	xorriso grub-common grub-pc-bin grub-efi-amd64-bin linux-image-amd64 busybox-static \
	acl attr libcap2-bin tar zstd cpio man-db groff-base bsdextrautils nfs-common \
	shim-signed grub-efi-amd64-signed ntfs-3g

# What the tests add: QEMU for the VM tests, a C compiler for the ELF tests,
# sshd to put into a rescue system and ssh to log into it, an NFS server
# for the VM test that recovers from an NFS export, minisign to check that
# backup signatures verify with the standard tool, age to check
# that an encrypted backup restores with `age -d | zstd -dc | tar -x`,
# systemd-analyze to verify the Debian package's units, dpkg-dev
# (dpkg-shlibdeps) for its library dependencies, and a virtual tape library
# for the tape VM test (tgt's tape and changer over iSCSI, open-iscsi, mt,
# mtx, sg3-utils).
TEST_PKGS = qemu-system-x86 ovmf gcc libc6-dev openssh-client openssh-server debootstrap nfs-kernel-server minisign age \
	systemd dpkg-dev tgt open-iscsi mt-st mtx sg3-utils

APT = DEBIAN_FRONTEND=noninteractive apt-get -y -qq -o Dpkg::Use-Pty=0 --no-install-recommends

.PHONY: all deps test-deps garage build install deb run test fuzz-smoke fuzz lint clean

all: deps install run

# What building the static binary needs: musl's C compiler wrapper (zstd and
# ring are C) and Rust's musl target (rustup).
BUILD_PKGS = musl-tools

deps:
	@missing=$$(for p in $(BUILD_PKGS); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then echo "installing:" $$missing; apt-get update -qq && $(APT) install $$missing; fi
	@rustup target list --installed 2>/dev/null | grep -qx $(MUSL) || rustup target add $(MUSL)
	@missing=$$(for p in $(RUNTIME_PKGS); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then echo "installing:" $$missing; apt-get update -qq && $(APT) install $$missing; fi

test-deps: deps
	@missing=$$(for p in $(TEST_PKGS); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then echo "installing:" $$missing; apt-get update -qq && $(APT) install $$missing; fi
	$(MAKE) garage

# Garage, a real S3 object store for the s3:// target's tests, built once
# from crates.io and cached in /var/tmp/lifeboat-garage (tests/garage.sh).
garage:
	tests/garage.sh

build:
	$(CARGO) build --release --locked --target $(MUSL) -p lifeboat

install: build
	install -D -m 0755 $(BIN) $(DESTDIR)$(PREFIX)/sbin/lifeboat
	$(BIN) -q manpage --dir $(DESTDIR)$(PREFIX)/share/man/man1
	install -d $(DESTDIR)$(PREFIX)/share/man/man5
	mv -f $(DESTDIR)$(PREFIX)/share/man/man1/lifeboat.toml.5 $(DESTDIR)$(PREFIX)/share/man/man5/
	install -d $(DESTDIR)/usr/share/bash-completion/completions
	$(BIN) completions bash > $(DESTDIR)/usr/share/bash-completion/completions/lifeboat

# The Debian package (docs/operations.md): target/deb/lifeboat_VERSION_ARCH.deb,
# with man pages, completions, the commented /etc/lifeboat/lifeboat.toml
# and the systemd timers; `apt install ./target/deb/lifeboat_*.deb`.
deb: build
	packaging/deb.sh --binary $(BIN) --out target/deb

# The main job: the preflight, then rescue media for this machine (which
# also saves its layout), then the layout as a tree.
run:
	$(PREFIX)/sbin/lifeboat check
	@echo
	$(PREFIX)/sbin/lifeboat mkrescue
	@echo
	$(PREFIX)/sbin/lifeboat layout show

# The static build first: the end-to-end tests put it into their VMs (the
# rescue systems they boot carry it), and static_host runs it on Debian 11.
test: test-deps build
	LIFEBOAT_REQUIRE_STATIC=1 $(CARGO) test --workspace --locked
	$(MAKE) fuzz-smoke

# Fuzzing (docs/fuzzing.md): the readers of catalogs, manifests, tar headers,
# sparse maps and layout files, with libFuzzer through cargo-fuzz on the
# stable toolchain (RUSTC_BOOTSTRAP lets it take the sanitizer flags). The
# fuzz project is not a workspace member and builds into fuzz/target.
# fuzz-smoke runs each target FUZZ_SECONDS from the corpus in the repo (new
# inputs go to fuzz/target/corpus, not into the repo): a reader that panics,
# aborts or hangs fails the tests. `make fuzz FUZZ_SECONDS=3600` runs longer.
FUZZ_TARGETS = catalog manifest headers sparse layout
FUZZ_SECONDS ?= 30
FUZZ = cd fuzz && RUSTC_BOOTSTRAP=1 $(CARGO) fuzz

fuzz-smoke fuzz:
	@command -v cargo-fuzz >/dev/null || $(CARGO) install --locked cargo-fuzz
	$(FUZZ) build -O -a
	@for t in $(FUZZ_TARGETS); do \
		mkdir -p fuzz/target/corpus/$$t fuzz/target/artifacts/$$t || exit 1; \
		echo "fuzz $$t: $(FUZZ_SECONDS) s"; \
		if ! ($(FUZZ) run -O -a $$t target/corpus/$$t corpus/$$t -- -max_total_time=$(FUZZ_SECONDS) \
			-timeout=10 -rss_limit_mb=2048 -max_len=65536 -artifact_prefix=target/artifacts/$$t/ \
			-print_final_stats=1 >target/fuzz-$$t.log 2>&1); then \
			tail -40 fuzz/target/fuzz-$$t.log; echo "fuzz $$t failed: the input is in fuzz/target/artifacts/$$t"; exit 1; \
		fi; \
		grep -h 'stat::number_of_executed_units' fuzz/target/fuzz-$$t.log; \
	done

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings

clean:
	$(CARGO) clean
