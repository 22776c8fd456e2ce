# SPDX-License-Identifier: MIT
# Top-level wrapper around Meson + Ninja.  The two commands a new user needs
# are `make demo` and `make test`; both install missing Debian packages first.

BUILD      ?= build
ASAN_BUILD ?= build-asan
PYTHON     ?= /usr/bin/python3
DEB_PACKAGES = meson ninja-build pkg-config gcc clang libjansson-dev \
	libplist-dev libcmocka-dev libsodium-dev libseccomp-dev libusb-1.0-0-dev \
	libdw-dev python3-pytest python3-serial socat picocom minicom screen tmux dbus iperf3 iputils-ping \
	libsystemd-dev binutils libclang-rt-14-dev groff-base man-db systemd \
	qemu-system-x86 busybox-static kmod libfuse3-dev libevdev-dev python3-evdev \
	libnbd-bin nbdkit fuse3 fio e2fsprogs nbd-client \
	libasound2-dev alsa-utils python3-numpy ethtool

.PHONY: all deps asan asan-test check test unit integration demo bench format clean fuzz \
	campaign campaign-ci install vm-test vm-campaign soak-usb soak-pci storage-big soak-audio

all: $(BUILD)/build.ninja
	ninja -C $(BUILD)

# Installs the SDK into the build's prefix (/usr/local unless
# `meson configure $(BUILD) -Dprefix=...`), or under DESTDIR when given:
# make install [DESTDIR=/tmp/stage].  docs/sdk.md lists what goes where.
install: all
	meson install -C $(BUILD) --no-rebuild $(if $(DESTDIR),--destdir "$(DESTDIR)")

# Installs only what is missing; does nothing (and needs no root) when
# everything is present.
deps:
	@missing=""; for p in $(DEB_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	fi

$(BUILD)/build.ninja: | deps
	meson setup $(BUILD) --buildtype=debugoptimized -Dwerror=true

$(ASAN_BUILD)/build.ninja: | deps
	CC=clang meson setup $(ASAN_BUILD) --buildtype=debug -Dwerror=true \
	  -Db_sanitize=address,undefined -Db_lundef=false

asan: $(ASAN_BUILD)/build.ninja
	ninja -C $(ASAN_BUILD)

# Every test against the ASan+UBSan build; any sanitizer report fails it.
asan-test: asan
	meson test -C $(ASAN_BUILD) --print-errorlogs
	ODK_BUILD=$(abspath $(ASAN_BUILD)) \
	  LD_PRELOAD=$$(clang -print-file-name=libclang_rt.asan-x86_64.so) ASAN_OPTIONS=detect_leaks=0 \
	  $(PYTHON) -m pytest -q tests/integration

unit: all
	meson test -C $(BUILD) --print-errorlogs

integration: all
	ODK_BUILD=$(abspath $(BUILD)) $(PYTHON) -m pytest -q tests/integration

# The storage family's full-size run: nbdcopy of 1 GiB through the RAID-5
# export (the default in make integration is 24 MiB).
storage-big: all
	ODK_BUILD=$(abspath $(BUILD)) ODK_STORAGE_COPY_MB=1024 $(PYTHON) -m pytest -q \
	  tests/integration/test_storage.py -k nbdcopy

# The ALSA plugin's loopback soak at full size: aplay to odk-loopback while
# arecord records it, 10 minutes at 48 kHz with 64-frame periods while a
# CPU-bound job runs on every core (make integration runs 30 s of it,
# without the load; soak-audio is the client API's own soak).
.PHONY: audio-soak
audio-soak: all
	ODK_BUILD=$(abspath $(BUILD)) ODK_AUDIO_SOAK_SECONDS=600 ODK_AUDIO_SOAK_LOAD=1 \
	  $(PYTHON) -m pytest -q -s tests/integration/test_audio_alsa.py -k soak

# The quick suite: unit tests (cmocka) and end-to-end tests (pytest).
check: unit integration

# Everything CI runs (.ci/run): the quick suite, the same under ASan+UBSan,
# a 1 000-cycle fault campaign under ASan, and every fuzz target briefly.
test: check asan-test campaign-ci vm-test
	$(MAKE) fuzz SECONDS_PER_TARGET=$(CI_FUZZ_SECONDS)

# 13 targets: about 6 minutes in all (make fuzz alone runs longer).
CI_FUZZ_SECONDS ?= 25
CYCLES ?= 10000
SEED ?= 1

# The fault campaign by hand: make campaign [CYCLES=10000] [SEED=1] [CAMPAIGN_JOBS=4]
# (lanes: whole campaigns at once, each its own odkd and seed, sharing the cycles)
CAMPAIGN_JOBS ?= 4
campaign: all
	$(PYTHON) tests/stress/fault_campaign --build $(BUILD) --cycles $(CYCLES) --seed $(SEED) \
	  --jobs $(CAMPAIGN_JOBS)

campaign-ci: asan
	$(PYTHON) tests/stress/fault_campaign --build $(ASAN_BUILD) --cycles 1000 --seed $(SEED)

# Issue 17's full-size pacing run: 1 KiB at 300 baud 8N1 through the paced
# loopback, about 34 s (make integration runs 64 B at 1200 baud).
.PHONY: serial-pace
serial-pace: all
	ODK_BUILD=$(abspath $(BUILD)) ODK_SERIAL_PACE_BYTES=1024 ODK_SERIAL_PACE_BAUD=300 \
	$(PYTHON) -m pytest -q -s tests/integration/test_serial_kinds.py -k test_paced_loopback_takes

# The guest machine (tests/vm, docs/testing.md): Debian's stock kernel under
# QEMU on this machine's own file system runs tests/vm/suite while, beside
# it, the harness proves it fails a failing guest and kills a hung one.
vm-test: all
	@ODK_BUILD=$(abspath $(BUILD)) $(PYTHON) -m pytest -q tests/vm/test_harness.py & proofs=$$!; \
	ODK_BUILD=$(abspath $(BUILD)) $(PYTHON) tests/vm/run --build $(BUILD); suite=$$?; \
	wait $$proofs; proofs=$$?; \
	[ $$suite = 0 ] || echo "vm-test: the guest suite failed"; \
	[ $$proofs = 0 ] || echo "vm-test: the harness proofs (tests/vm/test_harness.py) failed"; \
	[ $$suite = 0 ] && [ $$proofs = 0 ]

# The guest's plug campaign at full size: 200 unplug/replug cycles of
# QEMU's FTDI adapter with bytes in flight, and 200 of QEMU's edu (VFIO)
# with DMA in flight (vm-test runs 3 of each).
vm-campaign: all
	ODK_BUILD=$(abspath $(BUILD)) $(PYTHON) tests/vm/run --build $(BUILD) --deadline 5400 \
	  --env ODK_VM_CAMPAIGN_CYCLES=$${ODK_VM_CAMPAIGN_CYCLES:-200} -- tests/vm/guest/test_plug_campaign.py

# The libusb source's guest tests at full size: 8 MiB through the CDC-ACM
# gadget each way and as the family's round trip (vm-test uses 1 MiB and
# 512 KiB).
soak-usb: all
	ODK_BUILD=$(abspath $(BUILD)) $(PYTHON) tests/vm/run --build $(BUILD) \
	  --env ODK_VM_ACM_BYTES=8388608 --env ODK_USB_LIBUSB_BYTES=8388608 -- \
	  tests/vm/guest/test_usb_libusb.py \
	  'tests/integration/test_usb_serial.py::test_8_mib_round_trip[cdc-acm-libusb]'

demo: all
	@$(BUILD)/bin/odk-demo $(BUILD)

# The PCI plug/unplug loop at full size: 500 cycles of the sim edu function
# with a DMA in flight (make integration runs 20).
soak-pci: all
	ODK_PCI_PLUG_CYCLES=500 ODK_BUILD=$(abspath $(BUILD)) $(PYTHON) -m pytest -q \
	  tests/integration/test_pci.py -k plug_unplug

# The capture card's full-size run: 1000 plug/unplug cycles with the app
# attached (50 in make integration), odk-capture for 10 s at 30 fps (3 s)
# and sixteen 8K frames, 2.26 GB (2).
.PHONY: soak-capture
soak-capture: all
	ODK_CAPTURE_PLUG_CYCLES=1000 ODK_CAPTURE_RATE_FRAMES=300 ODK_CAPTURE_8K_FRAMES=16 ODK_BUILD=$(abspath $(BUILD)) \
	  $(PYTHON) -m pytest -q tests/integration/test_pci_capture.py

# The audio loopback's full-size soak: 10 minutes at a 64-frame period,
# every frame checked, no xrun (make test runs 5 seconds of it).
soak-audio: all
	ODK_AUDIO_SOAK_S=600 ODK_BUILD=$(abspath $(BUILD)) $(PYTHON) -m pytest -q \
	  tests/integration/test_audio.py -k 64_frame

bench: all
	@bench/run $(BUILD) $(ONLY)

# libFuzzer targets (tests/fuzz): make fuzz [SECONDS=60] [TARGETS="fuzz_wire ..."]
SECONDS_PER_TARGET ?= 60
fuzz: deps
	tests/fuzz/run $(SECONDS_PER_TARGET) $(TARGETS)

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf $(BUILD) $(ASAN_BUILD)
