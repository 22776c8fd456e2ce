/* SPDX-License-Identifier: MIT */
/* odkctl_trust.c — keys and signatures from the command line:
 *   odkctl keygen NAME                    NAME.key (0600) and NAME.pub
 *   odkctl sign BUNDLE --key NAME.key     writes BUNDLE/odk.sig
 *   odkctl verify BUNDLE [--trust DIR] [--dev]
 * The bundle is loaded (and its manifest checked) as odkd loads it, so what
 * is signed is exactly what odkd will verify. */
#include <stdio.h>
#include <string.h>

#include "daemon/core/bundle.h"
#include "daemon/core/entitlements.h"
#include "daemon/core/signature.h"
#include "odk/status.h"
#include "odkctl_trust.h"

static int trust_usage(void)
{
    fprintf(stderr, "usage: odkctl keygen NAME\n"
                    "       odkctl sign BUNDLE --key NAME.key\n"
                    "       odkctl verify BUNDLE [--trust DIR] [--dev]\n");
    return 2;
}

static int load(const char *dir, bundle **b)
{
    char err[1024];
    if (bundle_load(dir, b, err, sizeof err) < 0) {
        fprintf(stderr, "odkctl: %s\n", err);
        return 1;
    }
    return 0;
}

static int keygen(const char *base)
{
    char err[1024];
    if (signature_keygen(base, err, sizeof err) < 0) {
        fprintf(stderr, "odkctl: %s\n", err);
        return 1;
    }
    printf("wrote %s.key (secret, mode 0600) and %s.pub (public: copy it into odkd's trust "
           "folder)\n",
           base, base);
    return 0;
}

static int sign(const char *dir, const char *key)
{
    bundle *b;
    if (load(dir, &b))
        return 1;
    char err[1024];
    int st = signature_sign(b->dir, key, b->entitlements, err, sizeof err);
    struct signature_info info;
    if (st == ODK_OK)
        st = signature_verify(b->dir, b->entitlements, NULL, &info, err, sizeof err);
    if (st < 0)
        fprintf(stderr, "odkctl: %s\n", err);
    else
        printf("signed %s (%s) with key %s\n", b->dir, b->id, info.key_id);
    bundle_free(b);
    return st < 0;
}

static int verify(const char *dir, const char *trust_dir, bool dev)
{
    bundle *b;
    if (load(dir, &b))
        return 1;
    char err[1024];
    struct signature_trust t = {trust_dir, dev};
    struct signature_info info;
    int st = signature_verify(b->dir, b->entitlements, trust_dir ? &t : NULL, &info, err,
                              sizeof err);
    if (st == ODK_OK && trust_dir)
        st = bundle_verify(b, &t, err, sizeof err);
    if (st < 0) {
        fprintf(stderr, "odkctl: %s\n", err);
    } else if (trust_dir) {
        printf("%s: signature good, key %s trusted (%s%s)\n", b->dir, info.key_id, info.key_file,
               info.dev_key ? ", a development key" : "");
    } else {
        printf("%s: signature good, key %s (not checked against a trust folder: --trust DIR)\n",
               b->dir, info.key_id);
    }
    bundle_free(b);
    return st < 0;
}

bool odkctl_trust(const char *cmd, int argc, char **argv, int *rc)
{
    if (strcmp(cmd, "keygen") == 0) {
        *rc = argc == 1 ? keygen(argv[0]) : trust_usage();
    } else if (strcmp(cmd, "sign") == 0) {
        *rc = argc == 3 && strcmp(argv[1], "--key") == 0 ? sign(argv[0], argv[2]) : trust_usage();
    } else if (strcmp(cmd, "verify") == 0) {
        const char *trust = NULL;
        bool dev = false, ok = argc >= 1;
        for (int i = 1; ok && i < argc; i++) {
            if (strcmp(argv[i], "--trust") == 0 && i + 1 < argc)
                trust = argv[++i];
            else if (strcmp(argv[i], "--dev") == 0)
                dev = true;
            else
                ok = false;
        }
        *rc = ok ? verify(argv[0], trust, dev) : trust_usage();
    } else {
        return false;
    }
    return true;
}
