/* SPDX-License-Identifier: MIT */
/* pci_match.h — the match keys of IOPCIDevice nodes (IOKit's names):
 *   IOPCIPrimaryMatch   "0xDDDDVVVV[&0xMASK] ..." against device<<16|vendor
 *   IOPCISecondaryMatch against subsystem-id<<16|subsystem-vendor-id
 *   IOPCIMatch          primary or secondary
 *   IOPCIClassMatch     against class-code<<8|revision-id (default mask
 *                       0xffffff00), or, written with at most 6 hex digits,
 *                       against the 24-bit class-code (default mask 0xffffff)
 * A string lists values separated by white space; any one matching is a
 * match.  PCI node properties: "vendor-id", "device-id",
 * "subsystem-vendor-id", "subsystem-id", "class-code", "revision-id",
 * integers.  Registered by the PCI bus module (pci.c); a separate file so
 * unit tests and fuzzers use the table without odkd. */
#ifndef ODK_BUSES_PCI_MATCH_H
#define ODK_BUSES_PCI_MATCH_H

#include "daemon/core/match.h"

extern const struct match_keys pci_match_keys;

#endif
