//! The clone file, and each rewrite on sample files of a restored tree.

use super::*;

const CLONE: &str = r#"
hostname = "web2"
domain = "example.net"
new_uuids = true

[[interface]]
match = "mac:52:54:00:12:34:56"
address = "192.0.2.12/24"
gateway = "192.0.2.1"
dns = ["192.0.2.53", "192.0.2.54"]
"#;

fn eth0() -> Addressing {
    Addressing {
        name: "eth0".into(),
        old_mac: Some("52:54:00:12:34:56".into()),
        new_mac: None,
        dhcp: false,
        address: Some("192.0.2.12/24".into()),
        gateway: Some("192.0.2.1".into()),
        dns: vec!["192.0.2.53".into()],
        old_addresses: vec!["192.0.2.11".into(), "2001:db8::11".into()],
    }
}

fn identity() -> Identity {
    Identity {
        source_hostname: "web1".into(),
        hostname: "web2".into(),
        domain: Some("example.net".into()),
        interfaces: vec![eth0()],
        new_uuids: true,
        uuids: BTreeMap::new(),
    }
}

fn source() -> Vec<(String, Option<String>)> {
    vec![("eth0".into(), Some("52:54:00:12:34:56".into())), ("eth1".into(), Some("52:54:00:ab:cd:ef".into()))]
}

fn write(root: &Path, rel: &str, text: &str) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
    std::fs::write(p, text).expect("write");
}

fn read(root: &Path, rel: &str) -> String {
    std::fs::read_to_string(root.join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

#[test]
fn the_clone_file_reads_with_its_interfaces() {
    let c = CloneFile::parse(CLONE).expect("parse");
    assert_eq!((c.hostname.as_str(), c.domain.as_deref(), c.new_uuids), ("web2", Some("example.net"), true));
    assert_eq!(c.interfaces.len(), 1);
    assert_eq!(c.interfaces[0].dns, ["192.0.2.53", "192.0.2.54"]);
    let minimal = CloneFile::parse("hostname = \"db3\"\n").expect("minimal");
    assert!(!minimal.new_uuids && minimal.interfaces.is_empty() && minimal.domain.is_none());
}

#[test]
fn a_wrong_clone_file_is_refused_naming_what_is_wrong() {
    let err = |t: &str| CloneFile::parse(t).expect_err(t);
    assert!(err("hostname = \"web_2\"").contains("not one DNS label"));
    assert!(err("hostname = \"web2.example.net\"").contains("not one DNS label"));
    assert!(err("hostname = \"w\"\ndomain = \"ex..net\"").contains("not a DNS domain"));
    assert!(err("hostname = \"w\"\nhostnme = \"x\"").contains("unknown field"));
    let iface = |body: &str| format!("hostname = \"w\"\n[[interface]]\n{body}");
    assert!(err(&iface("match = \"eth0\"\ndhcp = true")).contains("not mac:MAC, name:NAME or order:N"));
    assert!(err(&iface("match = \"order:0\"\ndhcp = true")).contains("order:N"));
    assert!(err(&iface("match = \"mac:52:54:00\"\ndhcp = true")).contains("mac:MAC"));
    assert!(err(&iface("match = \"name:eth0\"")).contains("give address"));
    assert!(err(&iface("match = \"name:eth0\"\ndhcp = true\naddress = \"1.2.3.4/8\"")).contains("both given"));
    assert!(err(&iface("match = \"name:eth0\"\naddress = \"1.2.3.4\"")).contains("ADDRESS/PREFIX"));
    assert!(err(&iface("match = \"name:eth0\"\naddress = \"1.2.3.4/33\"")).contains("ADDRESS/PREFIX"));
    assert!(err(&iface("match = \"name:eth0\"\ndhcp = true\ndns = [\"ns1\"]")).contains("not an IP address"));
    CloneFile::parse(&iface("match = \"name:eth0\"\naddress = \"2001:db8::12/64\"")).expect("IPv6");
}

#[test]
fn interfaces_resolve_by_mac_name_order_and_this_machines_mac() {
    let mut c = CloneFile::parse(CLONE).expect("parse");
    let id = Identity::resolve(&c, "web1", &source(), &[]).expect("resolve");
    assert_eq!((id.interfaces[0].name.as_str(), id.interfaces[0].new_mac.as_deref()), ("eth0", None));
    c.interfaces[0].matches = "order:2".into();
    let id = Identity::resolve(&c, "web1", &source(), &[]).expect("order");
    assert_eq!(id.interfaces[0].name, "eth1");
    assert_eq!(id.interfaces[0].old_mac.as_deref(), Some("52:54:00:ab:cd:ef"));
    c.interfaces[0].matches = "name:ens3".into();
    assert_eq!(Identity::resolve(&c, "web1", &source(), &[]).expect("name").interfaces[0].old_mac, None);
    // New hardware: the MAC is this machine's; its name there says which interface it is.
    c.interfaces[0].matches = "mac:52:54:00:99:99:99".into();
    let here = [("eth0".to_string(), "52:54:00:99:99:99".to_string())];
    let id = Identity::resolve(&c, "web1", &source(), &here).expect("here");
    assert_eq!(id.interfaces[0].name, "eth0");
    assert_eq!(id.interfaces[0].old_mac.as_deref(), Some("52:54:00:12:34:56"));
    assert_eq!(id.interfaces[0].new_mac.as_deref(), Some("52:54:00:99:99:99"));
    let e = Identity::resolve(&c, "web1", &source(), &[]).expect_err("unknown MAC").to_string();
    assert!(e.contains("mac:52:54:00:99:99:99") && e.contains("eth0 52:54:00:12:34:56"), "{e}");
    c.interfaces[0].matches = "order:3".into();
    assert!(Identity::resolve(&c, "web1", &source(), &[]).is_err());
}

#[test]
fn renewed_identities_keep_their_spelling_and_differ_per_clone() {
    let id = identity();
    let u = id.renew("3c5e7a91-1b2d-4f3e-8a6c-5d7e9f1a2b01");
    assert_eq!(u.len(), 36);
    assert_ne!(u, "3c5e7a91-1b2d-4f3e-8a6c-5d7e9f1a2b01");
    assert_eq!(u, id.renew("3c5e7a91-1b2d-4f3e-8a6c-5d7e9f1a2b01"), "the same clone plans the same UUID");
    assert_eq!(&u[14..15], "4");
    assert!(matches!(&u[19..20], "8" | "9" | "a" | "b"), "{u}");
    assert!(u.chars().all(|c| c == '-' || c.is_ascii_hexdigit() && !c.is_ascii_uppercase()), "{u}");
    let other = Identity { hostname: "web3".into(), ..identity() };
    assert_ne!(other.renew("3c5e7a91-1b2d-4f3e-8a6c-5d7e9f1a2b01"), u);
    let fat = id.renew("5EED-0001");
    assert!(fat.len() == 9 && &fat[4..5] == "-" && fat.chars().all(|c| c == '-' || c.is_ascii_hexdigit()));
    assert_eq!(fat, fat.to_ascii_uppercase());
    let md = id.renew("a1b2c3d4:e5f60718:293a4b5c:6d7e8f90");
    assert_eq!(md.matches(':').count(), 3);
    let dos = id.renew("0x5eed0002");
    assert!(dos.starts_with("0x") && dos.len() == 10 && dos != "0x5eed0002");
    let lvm = id.renew("Xy0z1W-AbCd-EfGh-IjKl-MnOp-QrSt-UvWxYz");
    assert_eq!(lvm.len(), 38);
    assert!(lvm.chars().all(|c| c == '-' || c.is_ascii_alphanumeric()));
}

#[test]
fn uuids_are_replaced_whole_in_every_spelling_and_case() {
    let mut m = BTreeMap::new();
    m.insert("3c5e7a91-1b2d-4f3e-8a6c-5d7e9f1a2b01".to_string(), "11111111-2222-4333-8444-555555555555".to_string());
    m.insert("5EED-0001".to_string(), "ABCD-1234".to_string());
    m.insert("a1b2c3d4:e5f60718:293a4b5c:6d7e8f90".to_string(), "00000000:11111111:22222222:33333333".to_string());
    m.insert("0x5eed0002".to_string(), "0x0badcafe".to_string());
    let fstab = "UUID=3c5e7a91-1b2d-4f3e-8a6c-5d7e9f1a2b01 / ext4 defaults 0 1\n\
                 UUID=5eed-0001 /boot/efi vfat umask=0077 0 1\n\
                 PARTUUID=5eed0002-01 /srv xfs defaults 0 2\n\
                 UUID=3c5e7a91-1b2d-4f3e-8a6c-5d7e9f1a2b011 /x ext4 defaults 0 2\n";
    assert_eq!(
        replace_uuids(fstab, &m),
        "UUID=11111111-2222-4333-8444-555555555555 / ext4 defaults 0 1\n\
         UUID=abcd-1234 /boot/efi vfat umask=0077 0 1\n\
         PARTUUID=0badcafe-01 /srv xfs defaults 0 2\n\
         UUID=3c5e7a91-1b2d-4f3e-8a6c-5d7e9f1a2b011 /x ext4 defaults 0 2\n"
    );
    let md = "ARRAY /dev/md0 metadata=1.2 UUID=a1b2c3d4:e5f60718:293a4b5c:6d7e8f90\nrd.md.uuid=A1B2C3D4-E5F6-0718-293A-4B5C6D7E8F90\n";
    assert_eq!(
        replace_uuids(md, &m),
        "ARRAY /dev/md0 metadata=1.2 UUID=00000000:11111111:22222222:33333333\nrd.md.uuid=00000000-1111-1111-2222-222233333333\n"
    );
}

#[test]
fn hosts_get_the_new_name_in_place_of_the_old_one() {
    let hosts = "127.0.0.1\tlocalhost\n127.0.1.1\tweb1.old.example web1  # this host\n192.0.2.7 web10 db1\n";
    assert_eq!(
        rewrite_hosts(hosts, "web1", "web2", Some("web2.example.net")),
        "127.0.0.1\tlocalhost\n127.0.1.1\tweb2.example.net web2  # this host\n192.0.2.7 web10 db1\n"
    );
    assert_eq!(
        rewrite_hosts(hosts, "web1", "web2", None),
        "127.0.0.1\tlocalhost\n127.0.1.1\tweb2.old.example web2  # this host\n192.0.2.7 web10 db1\n"
    );
    // A hosts file that never named the host gets a line for the new name.
    assert_eq!(rewrite_hosts("127.0.0.1 localhost", "web1", "web2", None), "127.0.0.1 localhost\n127.0.1.1\tweb2\n");
}

#[test]
fn the_mail_name_follows_the_host_but_not_a_mail_domain() {
    assert_eq!(rewrite_mailname("web1.old.example\n", "web1", "web2", Some("web2.example.net")), "web2.example.net\n");
    assert_eq!(rewrite_mailname("web1.old.example\n", "web1", "web2", None), "web2.old.example\n");
    assert_eq!(rewrite_mailname("example.com\n", "web1", "web2", None), "example.com\n");
}

#[test]
fn an_ifupdown_stanza_gets_the_new_address_and_keeps_its_other_options() {
    let text = "auto lo\niface lo inet loopback\n\nauto eth0\niface eth0 inet static\n    address 192.0.2.11\n    netmask 255.255.255.0\n    gateway 192.0.2.1\n    mtu 9000\n    dns-nameservers 192.0.2.50\n\niface eth0 inet6 auto\n";
    let new = rewrite_ifupdown(text, &eth0()).expect("stanza");
    assert_eq!(
        new,
        "auto lo\niface lo inet loopback\n\nauto eth0\niface eth0 inet static\n    address 192.0.2.12/24\n    gateway 192.0.2.1\n    dns-nameservers 192.0.2.53\n    mtu 9000\n\niface eth0 inet6 auto\n"
    );
    let dhcp = Addressing { dhcp: true, address: None, gateway: None, dns: vec![], ..eth0() };
    let new = rewrite_ifupdown(text, &dhcp).expect("stanza");
    assert!(new.contains("iface eth0 inet dhcp\n    mtu 9000\n"), "{new}");
    assert!(!new.contains("192.0.2.11"), "{new}");
    assert_eq!(rewrite_ifupdown("auto lo\niface lo inet loopback\n", &eth0()), None);
    assert_eq!(ifupdown_stanza(&eth0()), "\n# added by lifeboat recover --clone\nauto eth0\niface eth0 inet static\n    address 192.0.2.12/24\n    gateway 192.0.2.1\n    dns-nameservers 192.0.2.53\n");
}

#[test]
fn a_networkd_file_that_matches_the_interface_gets_the_new_addressing() {
    let text = "[Match]\nName=en* eth*\n\n[Network]\nAddress=192.0.2.11/24\nGateway=192.0.2.1\nDNS=192.0.2.50\nLLMNR=no\n\n[Address]\nAddress=192.0.2.99/24\n\n[Route]\nGateway=192.0.2.254\n\n[Route]\nDestination=10.0.0.0/8\nGateway=192.0.2.2\n";
    let new = rewrite_networkd(text, &eth0()).expect("matches");
    assert_eq!(
        new,
        "[Match]\nName=en* eth*\n\n[Network]\nLLMNR=no\nAddress=192.0.2.12/24\nGateway=192.0.2.1\nDNS=192.0.2.53\n\n"
    );
    let by_mac = "[Match]\nMACAddress=52:54:00:12:34:56\n\n[Network]\nDHCP=yes\n";
    assert_eq!(
        rewrite_networkd(by_mac, &eth0()).expect("by MAC"),
        "[Match]\nMACAddress=52:54:00:12:34:56\n\n[Network]\nAddress=192.0.2.12/24\nGateway=192.0.2.1\nDNS=192.0.2.53\n"
    );
    assert_eq!(rewrite_networkd("[Match]\nName=wl*\n\n[Network]\nDHCP=yes\n", &eth0()), None);
    let dhcp = Addressing { dhcp: true, address: None, gateway: None, dns: vec![], ..eth0() };
    assert!(rewrite_networkd("[Match]\nName=eth0\n", &dhcp)
        .expect("no network section")
        .ends_with("[Network]\nDHCP=yes\n"));
}

#[test]
fn a_networkmanager_connection_of_the_interface_gets_the_new_addressing() {
    let text = "[connection]\nid=Wired\ntype=ethernet\ninterface-name=eth0\n\n[ethernet]\n\n[ipv4]\naddress1=192.0.2.11/24,192.0.2.1\ndns=192.0.2.50;\nmethod=manual\nmay-fail=false\n\n[ipv6]\nmethod=auto\n";
    let new = rewrite_nmconnection(text, &eth0()).expect("matches");
    assert_eq!(
        new,
        "[connection]\nid=Wired\ntype=ethernet\ninterface-name=eth0\n\n[ethernet]\n\n[ipv4]\nmay-fail=false\nmethod=manual\naddress1=192.0.2.12/24,192.0.2.1\ndns=192.0.2.53;\n\n[ipv6]\nmethod=auto\n"
    );
    let by_mac = "[connection]\nid=x\n[ethernet]\nmac-address=52:54:00:12:34:56\n[ipv4]\nmethod=manual\naddresses1=10.0.0.2/8;10.0.0.1;\n";
    let dhcp = Addressing { dhcp: true, address: None, gateway: None, dns: vec![], ..eth0() };
    assert_eq!(
        rewrite_nmconnection(by_mac, &dhcp).expect("by MAC"),
        "[connection]\nid=x\n[ethernet]\nmac-address=52:54:00:12:34:56\n[ipv4]\nmethod=auto\n"
    );
    assert_eq!(rewrite_nmconnection("[connection]\ninterface-name=eth1\n", &eth0()), None);
}

#[test]
fn resolv_conf_gets_the_new_name_servers_where_the_old_ones_were() {
    let text = "# generated\nsearch example.net\nnameserver 192.0.2.50\nnameserver 192.0.2.51\noptions edns0\n";
    assert_eq!(
        rewrite_resolv_conf(text, &["192.0.2.53".into()]),
        "# generated\nsearch example.net\nnameserver 192.0.2.53\noptions edns0\n"
    );
    assert_eq!(rewrite_resolv_conf("", &["192.0.2.53".into()]), "nameserver 192.0.2.53\n");
}

/// A restored Debian-like tree with every file the clone changes.
fn tree(root: &Path) {
    write(root, "etc/hostname", "web1\n");
    write(root, "etc/hosts", "127.0.0.1 localhost\n127.0.1.1 web1.old.example web1\n192.0.2.11\tweb1.old.example\n");
    write(root, "etc/mailname", "web1.old.example\n");
    write(root, "etc/machine-id", "0123456789abcdef0123456789abcdef\n");
    write(root, "var/lib/dbus/machine-id", "0123456789abcdef0123456789abcdef\n");
    write(root, "etc/ssh/sshd_config", "PermitRootLogin no\n");
    write(root, "etc/ssh/ssh_host_ed25519_key", "secret\n");
    write(root, "etc/ssh/ssh_host_ed25519_key.pub", "ssh-ed25519 AAAA root@web1\n");
    write(root, "etc/network/interfaces", "source /etc/network/interfaces.d/*\nauto lo\niface lo inet loopback\n");
    write(
        root,
        "etc/network/interfaces.d/eth0",
        "auto eth0\niface eth0 inet static\n  address 192.0.2.11/24\n  gateway 192.0.2.1\n",
    );
    write(root, "etc/resolv.conf", "nameserver 192.0.2.50\n");
    write(root, "etc/fstab", "UUID=3c5e7a91-1b2d-4f3e-8a6c-5d7e9f1a2b01 / ext4 defaults 0 1\nUUID=3c5e7a91-1b2d-4f3e-8a6c-5d7e9f1a2b03 none swap sw 0 0\n");
    write(root, "etc/crypttab", "data UUID=3c5e7a91-1b2d-4f3e-8a6c-5d7e9f1a2b05 none luks\n");
    write(
        root,
        "boot/grub/grub.cfg",
        "search --no-floppy --fs-uuid --set=root 3c5e7a91-1b2d-4f3e-8a6c-5d7e9f1a2b01\nlinux /boot/vmlinuz root=UUID=3c5e7a91-1b2d-4f3e-8a6c-5d7e9f1a2b01 ro resume=UUID=3c5e7a91-1b2d-4f3e-8a6c-5d7e9f1a2b03\n",
    );
    write(root, "boot/efi/EFI/debian/grub.cfg", "search.fs_uuid 3c5e7a91-1b2d-4f3e-8a6c-5d7e9f1a2b01 root\n");
    write(root, "etc/passwd", "root:x:0:0:root:/root:/bin/sh\n");
}

fn renewed_identity() -> Identity {
    let mut id = identity();
    for old in [
        "3c5e7a91-1b2d-4f3e-8a6c-5d7e9f1a2b01",
        "3c5e7a91-1b2d-4f3e-8a6c-5d7e9f1a2b03",
        "3c5e7a91-1b2d-4f3e-8a6c-5d7e9f1a2b05",
    ] {
        let new = id.renew(old);
        id.uuids.insert(old.into(), new);
    }
    id
}

#[test]
fn a_restored_tree_gets_the_whole_identity_and_nothing_else_changes() {
    let tmp = tempfile::tempdir().expect("tmp");
    let root = tmp.path();
    tree(root);
    let id = renewed_identity();
    let done = apply(root, &id, "fedcba9876543210fedcba9876543210").expect("apply");
    assert_eq!(read(root, "etc/hostname"), "web2\n");
    assert_eq!(
        read(root, "etc/hosts"),
        "127.0.0.1 localhost\n127.0.1.1 web2.example.net web2\n192.0.2.12\tweb2.example.net\n"
    );
    assert_eq!(read(root, "etc/mailname"), "web2.example.net\n");
    assert_eq!(read(root, "etc/machine-id"), "fedcba9876543210fedcba9876543210\n");
    assert_eq!(read(root, "var/lib/dbus/machine-id"), "fedcba9876543210fedcba9876543210\n");
    assert!(done.ssh_keys_removed && !root.join("etc/ssh/ssh_host_ed25519_key").exists());
    assert!(!root.join("etc/ssh/ssh_host_ed25519_key.pub").exists() && root.join("etc/ssh/sshd_config").exists());
    assert_eq!(
        read(root, "etc/network/interfaces.d/eth0"),
        "auto eth0\niface eth0 inet static\n    address 192.0.2.12/24\n    gateway 192.0.2.1\n    dns-nameservers 192.0.2.53\n"
    );
    assert!(!read(root, "etc/network/interfaces").contains("eth0"), "configured in interfaces.d: nothing appended");
    assert_eq!(read(root, "etc/resolv.conf"), "nameserver 192.0.2.53\n");
    let (root_uuid, swap_uuid, luks_uuid) = (
        &id.uuids["3c5e7a91-1b2d-4f3e-8a6c-5d7e9f1a2b01"],
        &id.uuids["3c5e7a91-1b2d-4f3e-8a6c-5d7e9f1a2b03"],
        &id.uuids["3c5e7a91-1b2d-4f3e-8a6c-5d7e9f1a2b05"],
    );
    assert_eq!(
        read(root, "etc/fstab"),
        format!("UUID={root_uuid} / ext4 defaults 0 1\nUUID={swap_uuid} none swap sw 0 0\n")
    );
    assert_eq!(read(root, "etc/crypttab"), format!("data UUID={luks_uuid} none luks\n"));
    let grub = read(root, "boot/grub/grub.cfg");
    assert!(
        grub.contains(&format!("--set=root {root_uuid}\n"))
            && grub.contains(&format!("root=UUID={root_uuid} ro resume=UUID={swap_uuid}\n")),
        "{grub}"
    );
    assert!(!grub.contains("3c5e7a91"), "{grub}");
    assert_eq!(read(root, "boot/efi/EFI/debian/grub.cfg"), format!("search.fs_uuid {root_uuid} root\n"));
    assert_eq!(read(root, "etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n");
    let mut changed = done.changed.clone();
    changed.sort();
    assert!(!changed.iter().any(|f| f == "etc/passwd" || f == "etc/network/interfaces"), "{changed:?}");
    assert!(done.warnings.is_empty(), "{:?}", done.warnings);
    // Applying again changes only what is made new each time.
    let again = apply(root, &id, "fedcba9876543210fedcba9876543210").expect("again");
    assert!(again.changed.is_empty(), "{:?}", again.changed);
}

#[test]
fn links_are_not_followed_and_an_empty_machine_id_stays_empty() {
    let tmp = tempfile::tempdir().expect("tmp");
    let root = tmp.path();
    let outside = tempfile::tempdir().expect("outside");
    write(outside.path(), "resolv.conf", "nameserver 10.0.0.1\n");
    write(root, "etc/machine-id", "");
    std::fs::create_dir_all(root.join("var/lib/dbus")).expect("mkdir");
    std::os::unix::fs::symlink("/etc/machine-id", root.join("var/lib/dbus/machine-id")).expect("link");
    std::os::unix::fs::symlink(outside.path().join("resolv.conf"), root.join("etc/resolv.conf")).expect("link");
    let done = apply(root, &identity(), "fedcba9876543210fedcba9876543210").expect("apply");
    assert_eq!(read(root, "etc/machine-id"), "", "an empty machine-id is made at first boot");
    assert!(std::fs::symlink_metadata(root.join("var/lib/dbus/machine-id")).expect("link").file_type().is_symlink());
    assert_eq!(read(outside.path(), "resolv.conf"), "nameserver 10.0.0.1\n", "the link's target is left alone");
    assert_eq!(read(root, "etc/hostname"), "web2\n");
    assert!(!done.ssh_keys_removed);
    assert!(
        done.warnings
            .iter()
            .any(|w| w.contains("no ifupdown, systemd-networkd or NetworkManager configuration of eth0")),
        "{:?}",
        done.warnings
    );
}

#[test]
fn networkd_and_networkmanager_files_of_the_interface_are_rewritten_and_a_new_mac_follows() {
    let tmp = tempfile::tempdir().expect("tmp");
    let root = tmp.path();
    write(root, "etc/hostname", "web1\n");
    write(
        root,
        "etc/systemd/network/10-eth0.network",
        "[Match]\nMACAddress=52:54:00:12:34:56\n\n[Network]\nAddress=192.0.2.11/24\n",
    );
    write(root, "etc/systemd/network/20-wlan.network", "[Match]\nName=wl*\n\n[Network]\nDHCP=yes\n");
    write(root, "etc/systemd/network/10-eth0.link", "[Match]\nMACAddress=52:54:00:12:34:56\n[Link]\nName=eth0\n");
    write(
        root,
        "etc/NetworkManager/system-connections/eth0.nmconnection",
        "[connection]\ninterface-name=eth0\n[ipv4]\nmethod=auto\n",
    );
    let mut id = identity();
    id.interfaces[0].new_mac = Some("52:54:00:99:99:99".into());
    apply(root, &id, "fedcba9876543210fedcba9876543210").expect("apply");
    assert_eq!(
        read(root, "etc/systemd/network/10-eth0.network"),
        "[Match]\nMACAddress=52:54:00:99:99:99\n\n[Network]\nAddress=192.0.2.12/24\nGateway=192.0.2.1\nDNS=192.0.2.53\n"
    );
    assert_eq!(read(root, "etc/systemd/network/20-wlan.network"), "[Match]\nName=wl*\n\n[Network]\nDHCP=yes\n");
    assert_eq!(
        read(root, "etc/systemd/network/10-eth0.link"),
        "[Match]\nMACAddress=52:54:00:99:99:99\n[Link]\nName=eth0\n"
    );
    assert_eq!(
        read(root, "etc/NetworkManager/system-connections/eth0.nmconnection"),
        "[connection]\ninterface-name=eth0\n[ipv4]\nmethod=manual\naddress1=192.0.2.12/24,192.0.2.1\ndns=192.0.2.53;\n"
    );
}

#[test]
fn an_interface_no_file_configures_gets_an_ifupdown_stanza_where_ifupdown_is_used() {
    let tmp = tempfile::tempdir().expect("tmp");
    let root = tmp.path();
    write(root, "etc/network/interfaces", "auto lo\niface lo inet loopback");
    let done = apply(root, &identity(), "fedcba9876543210fedcba9876543210").expect("apply");
    assert!(done.warnings.is_empty(), "{:?}", done.warnings);
    assert_eq!(
        read(root, "etc/network/interfaces"),
        "auto lo\niface lo inet loopback\n\n# added by lifeboat recover --clone\nauto eth0\niface eth0 inet static\n    address 192.0.2.12/24\n    gateway 192.0.2.1\n    dns-nameservers 192.0.2.53\n"
    );
}

#[test]
fn systemd_name_globs() {
    assert!(glob("en*", "enp1s0") && glob("eth?", "eth0") && glob("*", "x") && glob("eth0", "eth0"));
    assert!(!glob("en*", "eth0") && !glob("eth?", "eth10"));
    assert!(glob("e*p*s0", "enp1s0") && glob("**", "") && glob("e**0", "eth0") && glob("*0", "eth0"));
    assert!(!glob("e*p*s1", "enp1s0") && !glob("?", "") && !glob("", "x") && !glob("*1", "eth0"));
    assert!(glob("*a*b", "xaaxab") && !glob("*a*b", "xaaxa"));
}

#[test]
fn a_name_of_thousands_of_stars_matches_quickly() {
    let started = std::time::Instant::now();
    let pattern = format!("{}z", "*".repeat(2000));
    assert!(!glob(&pattern, "enp1s0f0np0abcdefghijklmnopqrstuvwxy"));
    assert!(glob(&pattern, "enp1s0z"));
    assert!(glob(&"*".repeat(1_000_000), "eth0"), "no recursion: no stack overflow");
    assert!(!glob(&"*?".repeat(500_000), "eth0"));
    assert!(started.elapsed() < std::time::Duration::from_secs(1), "{:?}", started.elapsed());
    let file = format!("[Match]\nName={pattern}\n\n[Network]\nAddress=192.0.2.11/24\n");
    assert!(rewrite_networkd(&file, &eth0()).is_none());
}

fn symlink(target: &Path, link: &Path) {
    std::fs::create_dir_all(link.parent().expect("parent")).expect("mkdir");
    std::os::unix::fs::symlink(target, link).expect("link");
}

fn is_link(p: &Path) -> bool {
    std::fs::symlink_metadata(p).is_ok_and(|m| m.file_type().is_symlink())
}

#[test]
fn a_hostname_that_links_out_of_the_tree_is_replaced_and_its_target_left_alone() {
    let tmp = tempfile::tempdir().expect("tmp");
    let root = tmp.path();
    let outside = tempfile::tempdir().expect("outside");
    write(outside.path(), "disk", "the rescue system's disk\n");
    write(outside.path(), "hosts", "127.0.1.1 web1\n");
    symlink(&outside.path().join("disk"), &root.join("etc/hostname"));
    symlink(&outside.path().join("hosts"), &root.join("etc/hosts"));
    let done = apply(root, &identity(), "fedcba9876543210fedcba9876543210").expect("apply");
    assert_eq!(read(outside.path(), "disk"), "the rescue system's disk\n");
    assert_eq!(read(outside.path(), "hosts"), "127.0.1.1 web1\n");
    let m = std::fs::symlink_metadata(root.join("etc/hostname")).expect("hostname");
    assert!(m.file_type().is_file(), "the link became a regular file");
    assert_eq!(std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o7777 & !0o022, 0o644);
    assert_eq!(read(root, "etc/hostname"), "web2\n");
    assert!(is_link(&root.join("etc/hosts")), "a link that is only read is not followed and stays");
    assert!(done.changed.contains(&"etc/hostname".to_string()), "{:?}", done.changed);
}

#[test]
fn ssh_keys_behind_a_linked_directory_are_not_removed_and_the_report_says_so() {
    let tmp = tempfile::tempdir().expect("tmp");
    let root = tmp.path();
    let outside = tempfile::tempdir().expect("outside");
    write(outside.path(), "ssh/ssh_host_ed25519_key", "rescue's key\n");
    write(outside.path(), "ssh/ssh_host_ed25519_key.pub", "rescue's key\n");
    write(root, "etc/hostname", "web1\n");
    symlink(&outside.path().join("ssh"), &root.join("etc/ssh"));
    let done = apply(root, &identity(), "fedcba9876543210fedcba9876543210").expect("apply");
    assert!(outside.path().join("ssh/ssh_host_ed25519_key").is_file());
    assert!(outside.path().join("ssh/ssh_host_ed25519_key.pub").is_file());
    assert!(!done.ssh_keys_removed);
    assert!(
        done.warnings.iter().any(|w| w.contains("/etc/ssh is a symbolic link") && w.contains("/etc/ssh/ssh_host_*")),
        "{:?}",
        done.warnings
    );
    assert_eq!(read(root, "etc/hostname"), "web2\n");
}

#[test]
fn nothing_is_written_below_an_etc_that_links_out_of_the_tree() {
    let tmp = tempfile::tempdir().expect("tmp");
    let root = tmp.path();
    let outside = tempfile::tempdir().expect("outside");
    write(outside.path(), "hostname", "rescue\n");
    write(outside.path(), "hosts", "127.0.1.1 rescue web1\n");
    write(outside.path(), "machine-id", "0123456789abcdef0123456789abcdef\n");
    write(outside.path(), "network/interfaces", "auto eth0\niface eth0 inet static\n    address 192.0.2.11/24\n");
    write(outside.path(), "systemd/network/10-eth0.network", "[Match]\nName=eth0\n\n[Network]\nDHCP=yes\n");
    write(outside.path(), "ssh/ssh_host_rsa_key", "key\n");
    let before = |p: &Path| -> Vec<(PathBuf, String)> {
        let mut v = Vec::new();
        let mut stack = vec![p.to_path_buf()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).expect("list").flatten() {
                if e.file_type().expect("type").is_dir() {
                    stack.push(e.path());
                } else {
                    v.push((e.path(), std::fs::read_to_string(e.path()).expect("read")));
                }
            }
        }
        v.sort();
        v
    };
    let was = before(outside.path());
    symlink(outside.path(), &root.join("etc"));
    write(root, "var/lib/dbus/machine-id", "0123456789abcdef0123456789abcdef\n");
    let mut id = renewed_identity();
    id.interfaces = vec![eth0()];
    let done = apply(root, &id, "fedcba9876543210fedcba9876543210").expect("apply");
    assert_eq!(before(outside.path()), was, "nothing outside the tree changed");
    assert!(is_link(&root.join("etc")));
    assert_eq!(read(root, "var/lib/dbus/machine-id"), "fedcba9876543210fedcba9876543210\n");
    assert!(done.changed.iter().all(|f| !f.starts_with("etc/")), "{:?}", done.changed);
    let w = done.warnings.iter().find(|w| w.contains("/etc is a symbolic link")).expect("warning");
    assert!(w.contains("/etc/hostname") && w.contains("/etc/ssh/ssh_host_*"), "{w}");
}

#[test]
fn md_arrays_of_the_old_host_become_the_new_hosts() {
    let conf = "HOMEHOST web1\nARRAY /dev/md/0 metadata=1.2 UUID=a1b2c3d4:e5f60718:293a4b5c:6d7e8f90 name=web1:0\nARRAY /dev/md/1 name=other:1\n";
    assert_eq!(
        rewrite_mdadm_homehost(conf, "web1", "web2"),
        "HOMEHOST web2\nARRAY /dev/md/0 metadata=1.2 UUID=a1b2c3d4:e5f60718:293a4b5c:6d7e8f90 name=web2:0\nARRAY /dev/md/1 name=other:1\n"
    );
}

#[test]
fn the_sources_addresses_in_hosts_become_the_clones() {
    let id = identity();
    let m = id.readdressed();
    assert_eq!(m.len(), 1, "only the IPv4 address is replaced by an IPv4 one: {m:?}");
    let hosts = "192.0.2.11 web2\n  192.0.2.110 other\n#192.0.2.11 commented\n2001:db8::11 web2\n";
    assert_eq!(
        readdress_hosts(hosts, &m),
        "192.0.2.12 web2\n  192.0.2.110 other\n#192.0.2.11 commented\n2001:db8::11 web2\n"
    );
}

#[test]
fn a_static_address_without_gateway_or_dns_keeps_the_old_ones() {
    let bare = Addressing { gateway: None, dns: vec![], ..eth0() };
    let ifupdown =
        "iface eth0 inet static\n    address 192.0.2.11/24\n    gateway 192.0.2.1\n    dns-nameservers 192.0.2.50\n";
    assert_eq!(
        rewrite_ifupdown(ifupdown, &bare).expect("stanza"),
        "iface eth0 inet static\n    address 192.0.2.12/24\n    gateway 192.0.2.1\n    dns-nameservers 192.0.2.50\n"
    );
    let networkd =
        "[Match]\nName=eth0\n\n[Network]\nAddress=192.0.2.11/24\nDNS=192.0.2.50\n\n[Route]\nGateway=192.0.2.1\n";
    assert_eq!(
        rewrite_networkd(networkd, &bare).expect("matches"),
        "[Match]\nName=eth0\n\n[Network]\nDNS=192.0.2.50\nAddress=192.0.2.12/24\n\n[Route]\nGateway=192.0.2.1\n"
    );
    let nm =
        "[connection]\ninterface-name=eth0\n[ipv4]\naddress1=192.0.2.11/24,192.0.2.1\ndns=192.0.2.50;\nmethod=manual\n";
    assert_eq!(
        rewrite_nmconnection(nm, &bare).expect("matches"),
        "[connection]\ninterface-name=eth0\n[ipv4]\ndns=192.0.2.50;\nmethod=manual\naddress1=192.0.2.12/24,192.0.2.1\n"
    );
}
