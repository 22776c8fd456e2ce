/* SPDX-License-Identifier: MIT */
/* signature.h — ed25519 keys and bundle signatures (libsodium).
 *
 * A key pair is two text files: NAME.key (the secret, mode 0600) and
 * NAME.pub (the public key, safe to copy into a trust folder):
 *   NAME.key  "odk-secret-key ed25519 <128 hex digits>\n"
 *   NAME.pub  "odk-public-key ed25519 <64 hex digits> NAME\n"
 *
 * A signed bundle holds SIGNATURE_FILE (odk.sig), a text file:
 *   odk-signature 1
 *   key ed25519 <64 hex: the signer's public key>
 *   entitlements <the bundle's entitlements as compact JSON, one line>
 *   file <64 hex: BLAKE2b-256 of the file> <name>     (one per file, sorted)
 *   sig <128 hex: ed25519 over every byte above this line>
 * The files are every regular file in the bundle folder except odk.sig
 * (bundles are flat: sub-folders are not part of a bundle and are skipped).
 *
 * Trust is a folder of .pub files: the .pub files in TRUST are trusted keys,
 * those in TRUST/dev development keys, accepted only in development mode.
 *
 * Every function here is synchronous (it reads and hashes files), keeps no
 * state between calls and may be called from any thread.  Errors are
 * odk statuses with a sentence in err that names the file at fault.
 */
#ifndef ODK_DAEMON_SIGNATURE_H
#define ODK_DAEMON_SIGNATURE_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>

#include "odk/value.h"

#define SIGNATURE_FILE "odk.sig"
/* Largest odk.sig read; a bigger one is refused (ODK_E_LIMIT).  One line
 * per file of about 100 bytes: room for thousands of files. */
#define SIGNATURE_MAX (1u << 20)
/* Key ids in messages: the first 16 hex digits of the public key. */
#define SIGNATURE_KEY_ID_LEN 16

/* Writes base.key (created exclusively, mode 0600) and base.pub.  base is a
 * path without the suffix; its last component names the key in base.pub.
 * ODK_E_EXISTS when either file exists (nothing is overwritten), ODK_E_IO
 * when a file cannot be written. */
int signature_keygen(const char *base, char *err, size_t err_len);

/* The BLAKE2b-256 hash of a file's bytes, as the signed list has it.
 * ODK_E_IO with a sentence naming the file. */
#define SIGNATURE_HASH_BYTES 32
int signature_hash_file(const char *path, unsigned char out[SIGNATURE_HASH_BYTES], char *err,
                        size_t err_len);

/* Signs the bundle in folder dir with the secret key file key_path:
 * writes dir/odk.sig (replacing any earlier one) covering every file and
 * entitlements (a dictionary; borrowed).  ODK_E_NOT_FOUND / ODK_E_IO when a
 * file cannot be read, ODK_E_MANIFEST when key_path is not a secret key. */
int signature_sign(const char *dir, const char *key_path, const odk_value *entitlements,
                   char *err, size_t err_len);

/* Who may have signed: NULL trust_dir accepts any key (integrity only, as
 * `odkctl verify` without --trust).  dev accepts the keys in TRUST/dev too. */
struct signature_trust {
    const char *trust_dir;
    bool dev;
};

/* What verification found (filled as far as it got). */
struct signature_info {
    char key_id[SIGNATURE_KEY_ID_LEN + 1]; /* the signer's key id */
    char key_file[PATH_MAX];               /* the trusted .pub that matched, or "" */
    bool dev_key;                          /* it is in TRUST/dev */
};

/* Checks dir/odk.sig against the folder's files, the bundle's entitlements
 * (borrowed; compared with the signed copy) and the trust folder.
 * ODK_E_ACCESS with a sentence saying which: the bundle is unsigned, its
 * signature is malformed or does not verify, a file differs / is missing /
 * was added after signing (naming the first such file in name order), the
 * entitlements changed, or the key is not trusted (or only as a development
 * key without dev).  ODK_E_IO when a file cannot be read.  info may be NULL. */
int signature_verify(const char *dir, const odk_value *entitlements,
                     const struct signature_trust *trust, struct signature_info *info,
                     char *err, size_t err_len);

#endif
