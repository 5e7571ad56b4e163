# lifeboat: `make` installs what is missing, builds and installs lifeboat, and
# runs its main job on this machine; `make test` runs the whole test suite.
# Both need root on Debian or Ubuntu (apt-get); see README.md.

PREFIX  ?= /usr/local
CARGO   ?= cargo
BIN      = target/release/lifeboat

# What lifeboat uses on this machine: capture, rescue media, and the tools
# that go into the rescue system. linux-image-amd64 gives a kernel with
# modules to build rescue media from on machines booted from outside (VMs);
# shim-signed and grub-efi-amd64-signed let the media boot with Secure Boot.
RUNTIME_PKGS = util-linux fdisk mount e2fsprogs xfsprogs btrfs-progs dosfstools mtools \
	mdadm lvm2 thin-provisioning-tools cryptsetup-bin dmsetup efibootmgr iproute2 kmod \
	xorriso grub-common grub-pc-bin grub-efi-amd64-bin linux-image-amd64 busybox-static \
	acl attr libcap2-bin tar zstd cpio man-db groff-base bsdextrautils nfs-common \
	shim-signed grub-efi-amd64-signed

# What the tests add: QEMU for the VM tests, a C compiler for the ELF tests,
# sshd to put into a rescue system and ssh to log into it, an NFS server
# for the VM test that recovers from an NFS export.
TEST_PKGS = qemu-system-x86 ovmf gcc libc6-dev openssh-client openssh-server debootstrap nfs-kernel-server

APT = DEBIAN_FRONTEND=noninteractive apt-get -y -qq -o Dpkg::Use-Pty=0 --no-install-recommends

.PHONY: all deps test-deps build install run test lint clean

all: deps install run

deps:
	@missing=$$(for p in $(RUNTIME_PKGS); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then echo "installing:" $$missing; apt-get update -qq && $(APT) install $$missing; fi

test-deps: deps
	@missing=$$(for p in $(TEST_PKGS); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then echo "installing:" $$missing; apt-get update -qq && $(APT) install $$missing; fi

build:
	$(CARGO) build --release --locked

install: build
	install -D -m 0755 $(BIN) $(DESTDIR)$(PREFIX)/sbin/lifeboat
	$(BIN) manpage --dir $(DESTDIR)$(PREFIX)/share/man/man1 >/dev/null
	install -d $(DESTDIR)/usr/share/bash-completion/completions
	$(BIN) completions bash > $(DESTDIR)/usr/share/bash-completion/completions/lifeboat

# The main job: the preflight, then rescue media for this machine (which
# also saves its layout), then the layout as a tree.
run:
	$(PREFIX)/sbin/lifeboat check
	@echo
	$(PREFIX)/sbin/lifeboat mkrescue
	@echo
	$(PREFIX)/sbin/lifeboat layout show

test: test-deps
	$(CARGO) test --workspace --locked

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings

clean:
	$(CARGO) clean
