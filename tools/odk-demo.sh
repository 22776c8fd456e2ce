#!/bin/sh
# SPDX-License-Identifier: MIT
# odk demo: odkd with the sim bus's built-in devices and the sample bundles,
# in a throw-away state folder.  Runs until Ctrl-C, or until the terminal
# closes (SIGHUP) or someone sends SIGTERM: odkd stops its drivers either way.
set -eu
bin=$(cd "$(dirname "$0")" && pwd)
state=$(mktemp -d /tmp/odk-demo.XXXXXX)
devdir="$state/dev"
mkdir -p "$devdir"
export ODK_STATE_DIR="$state"

"$bin/odkd" --state-dir "$state" --demo --dev-dir "$devdir" 2>"$state/odkd.log" &
odkd=$!
# The demo exits with odkd's own status, so a failed shutdown shows.
# (|| true and || st=: under set -e a failing command in a trap would end
# the shell before the clean-up.)
trap 'kill $odkd 2>/dev/null || true; st=0; wait $odkd || st=$?; rm -rf "$state"; trap - EXIT; exit $st' INT TERM HUP
trap 'kill $odkd 2>/dev/null || true; rm -rf "$state"' EXIT

# Wait until odkd answers, plug a simulated USB CDC-ACM adapter (its
# device model runs in a process of its own), QEMU's edu on the sim PCI bus
# and a capture card, a USB keyboard, an HBA and an audio loopback, then
# wait until every device has a running driver: hello, the serial loopback,
# usb-cdc-acm, pci-edu, pci-capture, hid-remap, scsi-raid and audio-loopback.
i=0
until "$bin/odkctl" list >/dev/null 2>&1; do
    i=$((i + 1))
    if [ $i -gt 100 ] || ! kill -0 $odkd 2>/dev/null; then
        echo "odkd did not start; its log:" >&2
        cat "$state/odkd.log" >&2
        exit 1
    fi
    sleep 0.1
done
"$bin/odkctl" usb plug cdc-acm >/dev/null
"$bin/odkctl" pci plug edu >/dev/null  # QEMU's edu on the sim PCI bus: pci-edu takes it
"$bin/odkctl" pci plug capture >/dev/null  # a video capture card: pci-capture takes it
# A simulated USB keyboard: hid-remap takes it (a -> b, Caps Lock taps
# Escape and holds Control, Space + hjkl are arrows).
kbd=$("$bin/odkctl" usb plug hid-keyboard)
# A simulated HBA with eight disks (sparse files): scsi-raid makes them one
# RAID-5 volume, exported over NBD.
"$bin/odkctl" storage plug 8 '{"size_mb": 64}' >/dev/null
# The audio loopback (drivers/audio-loopback): what is played to
# odk-loopback is recorded from it.
"$bin/odkctl" sim plug '{"properties": {"model": "audio-loopback"}}' >/dev/null
i=0
until [ "$("$bin/odkctl" list 2>/dev/null | grep -c running)" -ge 8 ]; do
    i=$((i + 1))
    if [ $i -gt 100 ] || ! kill -0 $odkd 2>/dev/null; then
        echo "odkd did not start; its log:" >&2
        cat "$state/odkd.log" >&2
        exit 1
    fi
    sleep 0.1
done
# As root (TAP interfaces need it), a pair of simulated NICs joined by a
# simulated cable: two real network interfaces (drivers/net-sim).
netifs=""
if [ "$(id -u)" = 0 ] && [ -e /dev/net/tun ]; then
    for end in a b; do
        "$bin/odkctl" sim plug '{"properties": {"model": "net-sim", "cable": "demo"}}' >/dev/null
    done
    i=0
    until [ "$("$bin/odkctl" --json net 2>/dev/null | grep -c '"BSD Name"')" -ge 2 ]; do
        i=$((i + 1))
        [ $i -le 100 ] || break
        sleep 0.1
    done
    netifs=$("$bin/odkctl" --json net | sed -n 's/.*"BSD Name": *"\([^"]*\)".*/\1/p' | paste -sd' ' -)
fi
sleep 0.3

echo "== odk demo: odkd runs in $state (log: $state/odkd.log)"
echo
echo "== what matched (odkctl list)"
"$bin/odkctl" list
echo
echo "== the registry (odkctl tree)"
"$bin/odkctl" tree
echo
node=$("$bin/odkctl" find '{"IOProviderClass": "HelloDriver"}' | awk 'NR==1 {print $1}')
device=$("$bin/odkctl" find '{"IOProviderClass": "OdkSimDevice", "IOPropertyMatch": {"model": "hello"}}' | awk 'NR==1 {print $1}')
echo "== try it, in another terminal:"
echo "   export ODK_STATE_DIR=$state"
echo "   $bin/odkctl call $node 0 2 40            # the hello driver adds 2 + 40"
echo "   $bin/odkctl match --explain $device      # why each personality matched the hello device"
echo "   $bin/odkctl hosts                   # the driver host processes: one per instance, spares, primed ones"
for link in "$devdir"/tty.*; do
    [ -e "$link" ] || continue
    case $link in
    *usbmodem*) what="a simulated USB CDC-ACM adapter (usb-cdc-acm), looped back" ;;
    *) what="a loopback serial port: what you type comes back" ;;
    esac
    echo "   picocom -b 115200 $link         # $what"
done
if [ -n "$netifs" ]; then
    echo "   $bin/odkctl net                     # the NIC pair's interfaces: $netifs"
    echo "   $bin/odkctl net cable demo unplug   # pull the simulated cable (ip link: NO-CARRIER)"
fi
echo "   $bin/odkctl usb -v                  # the USB adapter's descriptors, like lsusb -v"
edu=$("$bin/odkctl" find '{"IOProviderClass": "PciEdu"}' | awk 'NR==1 {print $1}')
echo "   $bin/odkctl pci -v                  # the edu PCI function, like lspci -nn -v"
echo "   $bin/odkctl call $edu 0 10             # pci-edu: the device computes 10!"
echo "   $bin/odk-capture --frames 300       # pci-capture: 10 s of 640x480 frames at 30 fps, each checked"
hid=$("$bin/odkctl" find '{"IOProviderClass": "IOUserHIDDevice"}' | awk 'NR==1 {print $1}')
echo "   $bin/odkctl hid                     # HID devices, report descriptors decoded"
echo "   $bin/odkctl hid follow $hid             # the remapped keyboard's events, live; then type:"
echo "   $bin/odkctl usb input $kbd 0000040000000000; $bin/odkctl usb input $kbd 0000000000000000   # a: comes out b"
uri=$("$bin/odkctl" storage | awk 'NR==1 {print $2}')
echo "   nbdinfo '$uri'"
echo "                                       # the RAID-5 volume over 8 simulated disks (scsi-raid)"
echo "   $bin/odkctl audio                   # the audio loopback: streams, formats, controls, clock"
echo "   $bin/odkctl audio watch odk-loopback   # its property changes, live; then, elsewhere:"
echo "   $bin/odkctl audio control odk-loopback 1 1   # mute its output"
# ALSA applications reach the loopback through odk's ALSA plugin; from the
# build tree, ALSA_CONFIG_PATH names the configuration meson generated next
# to the plugin (installed, alsa.conf.d's 50-odk.conf does it).
asoundrc="$bin/../src/families/audio/alsa/asoundrc"
if [ -f "$asoundrc" ]; then
    asoundrc="$(cd "$(dirname "$asoundrc")" && pwd)/asoundrc"
    echo "   export ALSA_CONFIG_PATH=$asoundrc"
    echo "                                       # how ALSA finds odk's plugin from the build tree (aplay -L lists odk:odk-loopback)"
    echo "   arecord -D odk:odk-loopback -f S16_LE -c 2 -r 48000 -d 10 take.wav &"
    echo "   aplay -D odk:odk-loopback song.wav  # what aplay plays, arecord records (48 kHz stereo S16_LE here)"
fi
echo
echo "   for example: odkctl call $node 0 2 40 prints $("$bin/odkctl" call "$node" 0 2 40)"
echo "   and odkctl call $edu 0 10 prints $("$bin/odkctl" call "$edu" 0 10)"
echo
[ -z "$netifs" ] || echo "   the NIC pair's network interfaces: $netifs"
echo "Press Ctrl-C to stop."
wait $odkd
