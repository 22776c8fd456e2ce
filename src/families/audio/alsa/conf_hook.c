/* SPDX-License-Identifier: MIT */
/* The ALSA configuration hook that lists the odk audio devices of the
 * running odkd: `aplay -L` / `arecord -L` show one `odk:UID` entry per
 * device (with its name, and Input/Output when it has one direction only).
 *
 * libasound runs hooks each time it (re)reads its configuration, which
 * snd_device_name_hint does afresh, so the list is the registry's at that
 * moment.  The hook asks odkd ($ODK_STATE_DIR, else /run/odk) through
 * libodk; with no odkd it adds nothing and succeeds, so ALSA works as
 * before.  Entries go under namehint.pcm, libasound's list of custom hints
 * ("NAME|DESCRIPTION"), and open through pcm.odk's UID argument.
 */
#include <alsa/asoundlib.h>
#include <stdio.h>
#include <string.h>

#include "odk/audio_client.h"

int snd_config_hook_odk_namehint(snd_config_t *root, snd_config_t *config, snd_config_t **dst,
                                 snd_config_t *private_data);

/* The compound id under parent, made when missing. */
static int compound(snd_config_t *parent, const char *id, snd_config_t **out)
{
    if (snd_config_search(parent, id, out) >= 0)
        return snd_config_get_type(*out) == SND_CONFIG_TYPE_COMPOUND ? 0 : -EINVAL;
    int err = snd_config_make_compound(out, id, 0);
    if (err < 0)
        return err;
    err = snd_config_add(parent, *out);
    if (err < 0)
        snd_config_delete(*out);
    return err;
}

static void directions(const odk_value *props, bool *out, bool *in)
{
    const odk_value *streams = odk_dict_get(props, "Streams");
    *out = *in = false;
    for (size_t i = 0; streams && i < odk_array_count(streams); i++) {
        const char *d = odk_dict_get_string(odk_array_get(streams, i), "Direction", "");
        if (strcmp(d, "output") == 0)
            *out = true;
        else if (strcmp(d, "input") == 0)
            *in = true;
    }
}

int snd_config_hook_odk_namehint(snd_config_t *root, snd_config_t *config, snd_config_t **dst,
                                 snd_config_t *private_data)
{
    *dst = NULL;
    odk_value *devs = NULL;
    if (odk_audio_list(NULL, &devs) != ODK_OK)
        return 0; /* no odkd: no odk devices, nothing wrong */
    snd_config_t *namehint, *pcm;
    int err = compound(root, "namehint", &namehint);
    if (err >= 0)
        err = compound(namehint, "pcm", &pcm);
    for (size_t i = 0; err >= 0 && i < odk_array_count(devs); i++) {
        const odk_value *props = odk_dict_get(odk_array_get(devs, i), "properties");
        const char *uid = odk_dict_get_string(props, "UID", "");
        /* A UID that would break the "NAME|DESC" string or the device
         * name's syntax is left out rather than listed wrong. */
        if (uid[0] == '\0' || strpbrk(uid, "|,:'\" \n{}[]$"))
            continue;
        bool out, in;
        directions(props, &out, &in);
        char id[32], desc[256], hint[512];
        snprintf(desc, sizeof desc, "%s\nodk audio device (%s)",
                 odk_dict_get_string(props, "Name", uid),
                 odk_dict_get_string(props, "Manufacturer", "odk"));
        for (char *c = desc; *c; c++)
            if (*c == '|')
                *c = '/'; /* a '|' would end the description */
        snprintf(id, sizeof id, "odk_device_%zu", i);
        snprintf(hint, sizeof hint, "odk:%s|%s%s", uid, desc,
                 out && !in ? "|IOIDOutput" : in && !out ? "|IOIDInput" : "");
        snd_config_t *n;
        err = snd_config_imake_string(&n, id, hint);
        if (err >= 0 && (err = snd_config_add(pcm, n)) < 0)
            snd_config_delete(n);
    }
    odk_value_free(devs);
    return err < 0 ? err : 0;
}
SND_DLSYM_BUILD_VERSION(snd_config_hook_odk_namehint, SND_CONFIG_DLSYM_VERSION_HOOK);
