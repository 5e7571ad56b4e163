# The storage stack of the VM tests (bash, in the harness guest):
#   vda1 + vdb1: md RAID1 (GPT partitions) -> LVM VG vgraid: LV root, thin pool
#                pool with the thin LV thin1
#   vdc:         LUKS2 on the whole disk (passphrase in /tmp/key, UUID from
#                $LUKS_ID when set) -> LVM VG vgcrypt: LV home
#   vdd:         GPT with an ESP (vdd1) and a swap partition (vdd2)
# Filesystems and mounts are the caller's.
printf 'test passphrase' > /tmp/key
for d in /dev/vda /dev/vdb; do
  printf 'label: gpt\nsize=400M, type=A19D880F-05FC-4D3B-A006-743F0F84911E, name=raid\n' | sfdisk --quiet $d
done
mdadm --create /dev/md0 --run --level=1 --raid-devices=2 --metadata=1.2 --bitmap=internal \
      --name=lbtest:0 --assume-clean /dev/vda1 /dev/vdb1 >/dev/null 2>&1
pvcreate -q /dev/md0
vgcreate -q -s 4M vgraid /dev/md0
lvcreate -q -y -L 100M -n root vgraid
lvcreate -q -y --type thin-pool -L 120M -n pool vgraid
lvcreate -q -y -V 300M -T vgraid/pool -n thin1
cryptsetup luksFormat -q --type luks2 --pbkdf pbkdf2 --pbkdf-force-iterations 1000 \
      ${LUKS_ID:+--uuid $LUKS_ID} --label cryptlabel --key-file /tmp/key /dev/vdc
cryptsetup open --key-file /tmp/key /dev/vdc cryptpv
pvcreate -q /dev/mapper/cryptpv
vgcreate -q vgcrypt /dev/mapper/cryptpv
lvcreate -q -y -L 200M -n home vgcrypt
printf 'label: gpt\nsize=64M, type=U, name="EFI system"\nsize=64M, type=S, name=swap\n' | sfdisk --quiet /dev/vdd
