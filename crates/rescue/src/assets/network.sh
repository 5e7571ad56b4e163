#!/busybox/sh
# network.sh [IP-ARG]: configure interfaces for the rescue system.
# /etc/lifeboat/net.static lines (from the saved layout):
#   addr MAC ADDRESS/PREFIX      route DESTINATION GATEWAY      dns SERVER
IPARG="$1"
UDHCPC=/etc/lifeboat/udhcpc.script
mac_of() { cat /sys/class/net/$1/address 2>/dev/null; }
ifaces() { for d in /sys/class/net/*; do n=${d##*/}; [ "$n" = lo ] || [ ! -e $d/device ] || echo $n; done; }

if [ -n "$IPARG" ]; then
  # ip=CLIENT:SERVER:GATEWAY:NETMASK:HOSTNAME:DEVICE:AUTOCONF (kernel syntax), or ip=dhcp
  case "$IPARG" in
    dhcp|on|any) for n in $(ifaces); do ip link set $n up; udhcpc -i $n -n -q -t 5 -T 2 -s $UDHCPC; done; exit 0 ;;
  esac
  IFS=: read client server gw mask host dev auto <<EOT
$IPARG
EOT
  [ -n "$dev" ] || dev=$(ifaces | head -n 1)
  ip link set $dev up
  if [ -n "$client" ]; then
    ip addr add $client/${mask:-24} dev $dev
    [ -n "$gw" ] && ip route add default via $gw dev $dev
  else
    udhcpc -i $dev -n -q -t 5 -T 2 -s $UDHCPC
  fi
  [ -n "$host" ] && hostname $host
  exit 0
fi

for n in $(ifaces); do
  ip link set $n up
  mac=$(mac_of $n)
  static=$(grep -i "^addr $mac " /etc/lifeboat/net.static 2>/dev/null | cut -d' ' -f3)
  if [ -n "$static" ]; then
    for a in $static; do ip addr add $a dev $n; done
    echo "$n: static $static (the original machine's address for $mac)"
  else
    echo "$n: DHCP"
    udhcpc -i $n -n -q -t 5 -T 2 -s $UDHCPC &
  fi
done
wait
grep '^route ' /etc/lifeboat/net.static 2>/dev/null | while read _ dst gw; do
  ip route add $dst via $gw 2>/dev/null
done
if [ ! -s /etc/resolv.conf ]; then
  grep '^dns ' /etc/lifeboat/net.static 2>/dev/null | while read _ s; do echo "nameserver $s"; done > /etc/resolv.conf
fi
exit 0
