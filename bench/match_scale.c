/* SPDX-License-Identifier: MIT */
/* match_scale: odkd matching N registry nodes against P personalities
 * (10 000 each), black-box: the personalities are bundles on disk, the
 * nodes sim devices plugged through odkd's wire requests.
 *
 * Three odkd of its own.  "ours" and "unindexed" each load BUNDLES bundles
 * holding P personalities in all (each copies the echo test driver's
 * echo.so as its executable); the peer odkd loads none.  A round plugs
 * nodes into each (every sim-plug request is answered after its node was
 * matched) and times the plugs; then unplugs them (not timed).  The
 * difference from the peer is the time matching took: printed as "match
 * time", target at most 1 s for 10 000 x 10 000.
 *
 * The personalities ask for IOProviderClass OdkSimDevice (which every node
 * is) and an IOPropertyMatch of a "slot" no node has, so none matches and
 * no driver starts.  Verified each round: "explain" of two of the new
 * nodes lists all P personalities, not one matched, and odkd runs no
 * instance.
 *   - ours: IOPropertyMatch is a dictionary {"model": "ms", "slot": K}, a
 *     distinct K per personality, as real personalities name distinct
 *     vendor and product ids.  odkd's match index (match_index.h) files
 *     each under its slot, so a node is compared with the few whose slot
 *     it has (here none): N nodes.
 *   - unindexed: the same match written as an array of one dictionary,
 *     which the index does not file, so every pair is compared: the cost
 *     per pair without the index, over NU = min(N, 100) nodes, and what
 *     10 000 x 10 000 would take at that rate.
 *
 * usage: match_scale BUILD_DIR [P] [N]   (10000 10000) */
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "odk/client.h"
#include "odk/status.h"
#include "odk/value.h"

#include "bench.h"

#define ROUNDS 5
#define BUNDLES 100

struct daemon {
    char state[64];
    pid_t pid;
    odk_client *c;
};

static struct daemon ours_d, peer_d, unix_d;
static char tmp[64];

static void cleanup(void)
{
    if (ours_d.pid > 0)
        kill(ours_d.pid, SIGKILL);
    if (peer_d.pid > 0)
        kill(peer_d.pid, SIGKILL);
    if (unix_d.pid > 0)
        kill(unix_d.pid, SIGKILL);
    if (tmp[0]) {
        char cmd[128];
        snprintf(cmd, sizeof cmd, "rm -rf %s", tmp);
        if (system(cmd) != 0)
            fprintf(stderr, "match_scale: could not remove %s\n", tmp);
    }
}

static int start_odkd(const char *build, const char *drivers, struct daemon *dm, const char *name)
{
    snprintf(dm->state, sizeof dm->state, "%s/%s", tmp, name);
    if (mkdir(dm->state, 0755) < 0)
        return -1;
    char odkd[4096], log[128], sock[128];
    snprintf(odkd, sizeof odkd, "%s/bin/odkd", build);
    snprintf(log, sizeof log, "%s/odkd.log", dm->state);
    snprintf(sock, sizeof sock, "%s/odkd.sock", dm->state);
    dm->pid = fork();
    if (dm->pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        execl(odkd, odkd, "--state-dir", dm->state, "--dev-dir", dm->state, "--drivers", drivers,
              (char *)NULL);
        _exit(127);
    }
    if (dm->pid < 0)
        return -1;
    /* The first request is answered once odkd has loaded every bundle. */
    for (int i = 0; i < 3000; i++) {
        struct stat st;
        if (stat(sock, &st) == 0 && odk_client_open(dm->state, &dm->c) == ODK_OK)
            return odk_client_request(dm->c, "ping", NULL, NULL) < 0 ? -1 : 0;
        usleep(10000);
    }
    fprintf(stderr, "match_scale: odkd did not start (log: %s)\n", log);
    return -1;
}

/* BUNDLES bundles with p personalities in all, under dir; array: their
 * IOPropertyMatch as an array of one dictionary. */
static int write_bundles(const char *build, const char *dir, const char *echo_so, size_t p,
                         bool array)
{
    size_t per = (p + BUNDLES - 1) / BUNDLES, k = 0;
    for (int b = 0; b < BUNDLES && k < p; b++) {
        char path[512], cmd[1200];
        snprintf(path, sizeof path, "%s/ms%03d", dir, b);
        if (mkdir(path, 0755) < 0)
            return -1;
        snprintf(cmd, sizeof cmd, "cp '%s' '%s/ms.so'", echo_so, path);
        if (system(cmd) != 0)
            return -1;
        snprintf(path, sizeof path, "%s/ms%03d/odk.json", dir, b);
        FILE *f = fopen(path, "w");
        if (!f)
            return -1;
        fprintf(f,
                "{\"bundle\": \"org.odk.bench.ms%03d\", \"version\": \"1.0.0\", "
                "\"executable\": \"ms.so\", \"entitlements\": {\"sim\": true}, "
                "\"personalities\": {",
                b);
        for (size_t i = 0; i < per && k < p; i++, k++)
            fprintf(f,
                    "%s\"P%zu\": {\"IOProviderClass\": \"OdkSimDevice\", \"IOClass\": "
                    "\"IOUserService\", \"IOUserClass\": \"EchoDriver\", \"IOUserServerName\": "
                    "\"org.odk.bench.ms%03d\", \"IOPropertyMatch\": %s{\"model\": \"ms\", "
                    "\"slot\": %zu}%s, \"IOProbeScore\": %zu}",
                    i ? ", " : "", k, b, array ? "[" : "", k, array ? "]" : "", k % 7);
        fprintf(f, "}}\n");
        if (fclose(f) != 0)
            return -1;
        /* odkd runs only signed bundles: the build's key, which it trusts. */
        snprintf(cmd, sizeof cmd,
                 "'%s/bin/odkctl' sign '%s/ms%03d' --key '%s/keys/odk-build.key' >/dev/null", build,
                 dir, b, build);
        if (system(cmd) != 0)
            return -1;
    }
    return 0;
}

static int plug(odk_client *c, int64_t slot, uint64_t *id)
{
    odk_value *props = odk_value_new_dict(), *dev = odk_value_new_dict(),
              *args = odk_value_new_dict();
    if (!props || !dev || !args)
        return ODK_E_NOMEM;
    odk_dict_set_string(props, "model", "ms");
    odk_dict_set_int(props, "slot", slot);
    odk_dict_set(dev, "properties", props);
    odk_dict_set(args, "device", dev);
    odk_value *reply = NULL;
    int st = odk_client_request(c, "sim-plug", args, &reply);
    if (st == ODK_OK)
        *id = (uint64_t)odk_dict_get_int(reply, "node", 0);
    odk_value_free(reply);
    return st;
}

static int request_node(odk_client *c, const char *op, uint64_t id, odk_value **reply)
{
    odk_value *args = odk_value_new_dict();
    if (!args)
        return ODK_E_NOMEM;
    odk_dict_set_int(args, "node", (int64_t)id);
    return odk_client_request(c, op, args, reply);
}

/* Plugs n nodes into dm (timed: *secs), unplugs them after; the node ids
 * are left in ids. */
static int plug_round(struct daemon *dm, uint32_t round, size_t n, uint64_t *ids, double *secs)
{
    uint64_t t0 = bench_now_ns();
    for (size_t j = 0; j < n; j++)
        if (plug(dm->c, -(int64_t)(round * n + j) - 1, &ids[j]) < 0) {
            fprintf(stderr, "match_scale: sim-plug %zu failed\n", j);
            return -1;
        }
    *secs = (double)(bench_now_ns() - t0) / 1e9;
    return 0;
}

static int unplug_all(struct daemon *dm, const uint64_t *ids, size_t n)
{
    for (size_t j = 0; j < n; j++)
        if (request_node(dm->c, "sim-unplug", ids[j], NULL) < 0)
            return -1;
    return 0;
}

/* "explain" of node id lists p personalities, none matched; no instance. */
static int verify(struct daemon *dm, uint64_t id, size_t p)
{
    odk_value *r = NULL;
    int st = request_node(dm->c, "explain", id, &r);
    const odk_value *a = r ? odk_dict_get(r, "personalities") : NULL;
    if (!a && r && odk_value_type(r) == ODK_TYPE_DICT)
        for (size_t i = 0; i < odk_dict_count(r) && !a; i++)
            if (odk_value_type(odk_dict_value_at(r, i)) == ODK_TYPE_ARRAY)
                a = odk_dict_value_at(r, i);
    size_t n = a ? odk_array_count(a) : 0, matched = 0;
    for (size_t i = 0; i < n; i++)
        if (odk_dict_get_bool(odk_array_get(a, i), "matched", true))
            matched++;
    odk_value_free(r);
    r = NULL;
    if (st < 0 || n != p || matched) {
        fprintf(stderr,
                "match_scale: explain of node %llu: %s, %zu personalities (want %zu), "
                "%zu matched (want 0)\n",
                (unsigned long long)id, odk_strerror(st), n, p, matched);
        return -1;
    }
    st = odk_client_request(dm->c, "list", NULL, &r);
    const odk_value *inst = r ? odk_dict_get(r, "instances") : NULL;
    size_t running = inst ? odk_array_count(inst) : 0;
    odk_value_free(r);
    if (st < 0 || running) {
        fprintf(stderr, "match_scale: odkd runs %zu instances, want none\n", running);
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: match_scale BUILD_DIR [P] [N]\n");
        return 2;
    }
    const char *build = argv[1];
    size_t p = argc > 2 ? strtoul(argv[2], NULL, 10) : 10000;
    size_t n = argc > 3 ? strtoul(argv[3], NULL, 10) : 10000;
    if (p < 1 || n < 2)
        return 2;
    snprintf(tmp, sizeof tmp, "/tmp/odk-match-scale.XXXXXX");
    if (!mkdtemp(tmp))
        return 1;
    atexit(cleanup);
    char bundles[128], arrays[128], empty[128], echo_so[4096];
    snprintf(bundles, sizeof bundles, "%s/bundles", tmp);
    snprintf(arrays, sizeof arrays, "%s/arrays", tmp);
    snprintf(empty, sizeof empty, "%s/none", tmp);
    snprintf(echo_so, sizeof echo_so, "%s/tests/drivers/echo/echo.so", build);
    if (mkdir(bundles, 0755) < 0 || mkdir(arrays, 0755) < 0 || mkdir(empty, 0755) < 0 ||
        write_bundles(build, bundles, echo_so, p, false) < 0 ||
        write_bundles(build, arrays, echo_so, p, true) < 0) {
        fprintf(stderr, "match_scale: cannot write the bundles under %s\n", tmp);
        return 1;
    }
    if (start_odkd(build, bundles, &ours_d, "ours") < 0 ||
        start_odkd(build, arrays, &unix_d, "unindexed") < 0 ||
        start_odkd(build, empty, &peer_d, "peer") < 0)
        return 1;
    size_t nu = n < 100 ? n : 100;
    uint64_t *ids = calloc(n, sizeof *ids), *pids = calloc(n, sizeof *pids);
    if (!ids || !pids)
        return 1;
    double o[ROUNDS], q[ROUNDS], diff[ROUNDS], u[ROUNDS], uq[ROUNDS], udiff[ROUNDS];
    for (uint32_t r = 0; r < ROUNDS; r++) {
        if (plug_round(&ours_d, r, n, ids, &o[r]) < 0 || verify(&ours_d, ids[0], p) < 0 ||
            verify(&ours_d, ids[n - 1], p) < 0 || unplug_all(&ours_d, ids, n) < 0)
            return 1;
        if (plug_round(&peer_d, r, n, pids, &q[r]) < 0 || verify(&peer_d, pids[n / 2], 0) < 0 ||
            unplug_all(&peer_d, pids, n) < 0)
            return 1;
        if (plug_round(&unix_d, r, nu, ids, &u[r]) < 0 || verify(&unix_d, ids[0], p) < 0 ||
            unplug_all(&unix_d, ids, nu) < 0)
            return 1;
        if (plug_round(&peer_d, r + ROUNDS, nu, pids, &uq[r]) < 0 ||
            unplug_all(&peer_d, pids, nu) < 0)
            return 1;
        diff[r] = o[r] - q[r];
        udiff[r] = u[r] - uq[r];
    }
    char name[128];
    snprintf(name, sizeof name, "match_scale %zu nodes plugged against %zu personalities", n, p);
    printf("match_scale: %d bundles, %zu personalities, %zu sim-plug requests per round; "
           "personalities filed by the match index; none matches (verified by explain)\n",
           BUNDLES, p, n);
    bench_report(name, "no personalities", "%.3f", "s", BENCH_LOWER_IS_BETTER, "ratio", o, q,
                 ROUNDS);
    struct bench_range d = bench_range_of(diff, ROUNDS);
    printf("match_scale match time (ours - peer): %.3f s (min %.3f, max %.3f) over %d rounds; "
           "%.2f us per node (target: 10000 x 10000 within 1 s)\n",
           d.median, d.min, d.max, ROUNDS, d.median * 1e6 / (double)n);
    struct bench_range ud = bench_range_of(udiff, ROUNDS);
    printf("match_scale unindexed (IOPropertyMatch as an array: every pair compared), %zu nodes: "
           "%.3f s (min %.3f, max %.3f) over %d rounds; %.1f ns per pair; 10000 x 10000 would "
           "take %.1f s\n",
           nu, ud.median, ud.min, ud.max, ROUNDS, ud.median * 1e9 / ((double)nu * (double)p),
           ud.median / ((double)nu * (double)p) * 1e8);
    free(ids);
    free(pids);
    return 0;
}
