/* SPDX-License-Identifier: MIT */
/* entitlements.h — what a bundle may bind to and create (docs/trust.md).
 *
 * A bundle's "entitlements" dictionary (odk.json, or entitlements.json /
 * Entitlements.plist beside it), covered by its signature:
 *   "usb":  [{"vendor": 1027, "product": 24577}, {"vendor": 1234}] or "*"
 *           (also DriverKit's "com.apple.developer.driverkit.transport.usb"
 *           with idVendor / idProduct); "vendor": "*" is a wildcard too
 *   "pci":  ["0xDDDDVVVV&0xMMMMMMMM", ...] or "*": (device-id << 16 |
 *           vendor-id) & mask == value & mask, IOPCIMatch's form; the
 *           mask must fix the vendor id (low 16 bits) outside --dev
 *   "sim":  true      simulated devices (the sim bus, simulated HBAs)
 *   "evdev": true     input devices of the evdev bus
 *   "resources": ["serial", "network", "block", "block-tcp", "audio", "hid"] or "*":
 *           the family resources the driver may create
 *   "network-client": true   the driver host keeps network access
 * Every "*" is a development wildcard, accepted only under odkd --dev.
 * Other keys are kept and ignored (other parts of odk read them).
 *
 * Pure functions of their arguments; any thread.
 */
#ifndef ODK_DAEMON_ENTITLEMENTS_H
#define ODK_DAEMON_ENTITLEMENTS_H

#include <stdbool.h>
#include <stddef.h>

#include "daemon/core/registry.h"
#include "odk/value.h"

/* Checks the shape of ent (a dictionary; borrowed).  ODK_E_MANIFEST with
 * the key path in err when a known key has the wrong type or form;
 * ODK_E_ACCESS when ent uses a wildcard and !dev (err names it). */
int entitlements_check(const odk_value *ent, bool dev, char *err, size_t err_len);

/* 1 when ent lets a driver bind to node, 0 with the reason in why ("the
 * bundle's entitlements do not cover USB vendor 0x0403 product 0x6001").
 * Nodes a driver published, and nodes of no transport (IOUserResources),
 * need no entitlement. */
int entitlements_cover_node(const registry *reg, const reg_node *node, const odk_value *ent,
                            char *why, size_t why_len);

/* 1 when ent lets the driver create a resource of kind ("serial",
 * "network", "block", "audio", "hid"), 0 with the reason in why. */
int entitlements_allow_resource(const odk_value *ent, const char *kind, char *why,
                                size_t why_len);

#endif
