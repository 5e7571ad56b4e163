#!/bin/bash
# Build the source system of the end-to-end recovery test: Debian minbase
# (SUITE: bookworm by default, bullseye, trixie) with its kernel, GRUB and
# the tools lifeboat needs, on a disk image. $1 = image, $2 = bios (MBR) or
# uefi (GPT with ESP).
# Disk: root ext4 (/), swap, ext4 /srv; a systemd unit runs
# /etc/lifeboat-e2e.sh at boot (which the test writes per run).
set -euo pipefail
IMG=$1; FW=$2; SIZE=${SIZE:-3G}; SUITE=${SUITE:-bookworm}
MIRROR=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
MIRROR=${MIRROR:-http://deb.debian.org/debian}
W=$(mktemp -d /var/tmp/lifeboat-src.XXXXXX); MNT=$W/mnt; mkdir -p $MNT
LOOP=""
cleanup() {
  for m in $MNT/srv $MNT/boot/efi $MNT/dev/pts $MNT/dev $MNT/proc $MNT/sys $MNT; do mountpoint -q $m && umount $m || true; done
  [ -n "$LOOP" ] && losetup -d "$LOOP" || true
  rm -rf $W
}
trap cleanup EXIT
rm -f "$IMG.part"; truncate -s $SIZE "$IMG.part"
if [ "$FW" = uefi ]; then
  sfdisk -q "$IMG.part" <<SF
label: gpt
size=100MiB, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, name=esp
size=2200MiB, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, name=root
size=128MiB, type=0657FD6D-A4AB-43C4-84E5-0933C84B4F4F, name=swap
type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, name=srv
SF
  P_ROOT=2; P_SWAP=3; P_SRV=4
else
  sfdisk -q "$IMG.part" <<SF
label: dos
size=2300MiB, type=83, bootable
size=128MiB, type=82
type=83
SF
  P_ROOT=1; P_SWAP=2; P_SRV=3
fi
LOOP=$(losetup -f --show -P "$IMG.part")
partx -u $LOOP 2>/dev/null || true; partx -a $LOOP 2>/dev/null || true
for i in $(seq 50); do [ -b ${LOOP}p$P_SRV ] && break; sleep 0.1; done
mkfs.ext4 -q -F -L root ${LOOP}p$P_ROOT
mkswap -L swap ${LOOP}p$P_SWAP >/dev/null
mkfs.ext4 -q -F -L srv ${LOOP}p$P_SRV
ROOTUUID=$(blkid -p -s UUID -o value ${LOOP}p$P_ROOT)
SWAPUUID=$(blkid -p -s UUID -o value ${LOOP}p$P_SWAP)
SRVUUID=$(blkid -p -s UUID -o value ${LOOP}p$P_SRV)
mount ${LOOP}p$P_ROOT $MNT
debootstrap --variant=minbase $SUITE $MNT $MIRROR > $W/debootstrap.log 2>&1 || { tail -20 $W/debootstrap.log; exit 1; }
mkdir -p $MNT/srv; mount ${LOOP}p$P_SRV $MNT/srv
mount --bind /dev $MNT/dev; mount -t devpts devpts $MNT/dev/pts; mount -t proc proc $MNT/proc; mount -t sysfs sys $MNT/sys
cp /etc/resolv.conf $MNT/etc/resolv.conf
{
  echo "UUID=$ROOTUUID / ext4 errors=remount-ro 0 1"
  echo "UUID=$SRVUUID /srv ext4 defaults 0 2"
  echo "UUID=$SWAPUUID none swap sw 0 0"
  echo "LABEL=BACKUP /mnt/backup ext4 defaults,nofail,x-systemd.device-timeout=10s 0 0"
} > $MNT/etc/fstab
if [ "$FW" = uefi ]; then
  mkfs.vfat -F 32 -n ESP ${LOOP}p1 >/dev/null
  echo "UUID=$(blkid -p -s UUID -o value ${LOOP}p1) /boot/efi vfat umask=0077,nofail 0 1" >> $MNT/etc/fstab
fi
mkdir -p $MNT/mnt/backup
echo source > $MNT/etc/hostname
printf '127.0.0.1 localhost\n127.0.1.1 source\n' > $MNT/etc/hosts
cat > $MNT/etc/default/grub <<G
GRUB_DEFAULT=0
GRUB_TIMEOUT=0
GRUB_DISTRIBUTOR=Debian
GRUB_CMDLINE_LINUX_DEFAULT=""
GRUB_CMDLINE_LINUX="console=ttyS0,115200 net.ifnames=0"
GRUB_TERMINAL="serial console"
GRUB_SERIAL_COMMAND="serial --unit=0 --speed=115200"
GRUB_DISABLE_OS_PROBER=true
G
echo "grub-pc grub-pc/install_devices multiselect" | chroot $MNT debconf-set-selections
mkdir -p $MNT/etc/initramfs-tools/conf.d
# MODULES=dep would probe the build host: list the VM's drivers.
echo "MODULES=dep" > $MNT/etc/initramfs-tools/conf.d/lifeboat-e2e.conf
printf '%s\n' virtio_pci virtio_blk virtio_scsi ata_piix ahci sd_mod nvme ext4 crc32c_generic >> $MNT/etc/initramfs-tools/modules
GRUBPKG=grub-pc; [ "$FW" = uefi ] && GRUBPKG="grub-efi-amd64 grub-pc-bin"
chroot $MNT env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
  linux-image-amd64 $GRUBPKG grub-efi-amd64-bin grub-pc-bin systemd-sysv udev kmod e2fsprogs dosfstools fdisk \
  zstd busybox-static xorriso mtools iproute2 acl attr libcap2-bin efibootmgr > $W/apt.log 2>&1 || { tail -30 $W/apt.log; exit 1; }
chroot $MNT sh -c 'echo root:lifeboat | chpasswd'
cat > $MNT/etc/systemd/system/lifeboat-e2e.service <<U
[Unit]
Description=lifeboat end-to-end test step
After=multi-user.target local-fs.target
[Service]
Type=oneshot
StandardOutput=tty
StandardError=tty
TTYPath=/dev/ttyS0
ExecStart=/bin/sh /etc/lifeboat-e2e.sh
ExecStartPost=/bin/systemctl --no-block poweroff
[Install]
WantedBy=multi-user.target
U
chroot $MNT systemctl enable lifeboat-e2e.service >/dev/null 2>&1
chroot $MNT systemctl mask getty@tty1.service serial-getty@ttyS0.service >/dev/null 2>&1 || true
if [ "$FW" = uefi ]; then
  mkdir -p $MNT/boot/efi; mount ${LOOP}p1 $MNT/boot/efi 2>/dev/null && EFIMOUNT=1 || EFIMOUNT=0
  chroot $MNT update-grub >/dev/null 2>&1
  # The host kernel has no vfat: build GRUB for the ESP here and copy it with mtools.
  cat > $W/embed.cfg <<E
search --no-floppy --fs-uuid --set=root $ROOTUUID
set prefix=(\$root)/boot/grub
configfile /boot/grub/grub.cfg
E
  grub-mkstandalone -O x86_64-efi -o $W/grubx64.efi --locales= --fonts= --themes= \
    --modules="part_gpt part_msdos ext2 search search_fs_uuid configfile normal linux serial" "boot/grub/grub.cfg=$W/embed.cfg"
  mmd -i ${LOOP}p1 ::/EFI ::/EFI/BOOT ::/EFI/debian
  mcopy -i ${LOOP}p1 $W/grubx64.efi ::/EFI/BOOT/BOOTX64.EFI
  mcopy -i ${LOOP}p1 $W/grubx64.efi ::/EFI/debian/grubx64.efi
else
  chroot $MNT grub-install --target=i386-pc --boot-directory=/boot $LOOP >/dev/null 2>&1
  chroot $MNT update-grub >/dev/null 2>&1
fi
# Without udev, grub-mkconfig names the loop device: use the UUID.
sed -i "s#root=${LOOP}p$P_ROOT#root=UUID=$ROOTUUID#g" $MNT/boot/grub/grub.cfg
grep -q "root=UUID=$ROOTUUID" $MNT/boot/grub/grub.cfg
chroot $MNT apt-get clean
rm -f $MNT/etc/resolv.conf
sync
cleanup; trap - EXIT
mv "$IMG.part" "$IMG"
echo "built $IMG"
