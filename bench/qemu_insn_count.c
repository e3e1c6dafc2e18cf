/*
 * A QEMU TCG plugin for `scripts/bench edge`: counts the guest instructions a user-mode program
 * executes, and prints `insns=N` at its exit (on QEMU's log, so run with `-d plugin -D FILE`).
 *
 * Each translated block gets an inline add of its instruction count, so counting costs one add
 * per block executed. The counter is shared by every guest thread without locking: run the
 * measured program with one working thread (dermo-scope: `[model] threads = 1`).
 *
 * Built against QEMU's public plugin header (`qemu-plugin.h`, plugin API version 1, as in QEMU
 * 7.2, Debian 12's), which the bench takes from Debian's QEMU source package.
 */
#include <inttypes.h>
#include <stdio.h>

#include <qemu-plugin.h>

QEMU_PLUGIN_EXPORT int qemu_plugin_version = QEMU_PLUGIN_VERSION;

static uint64_t executed;

static void on_translate(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
    (void)id;
    qemu_plugin_register_vcpu_tb_exec_inline(tb, QEMU_PLUGIN_INLINE_ADD_U64, &executed,
                                             qemu_plugin_tb_n_insns(tb));
}

static void on_exit(qemu_plugin_id_t id, void *userdata)
{
    (void)id;
    (void)userdata;
    char line[64];
    snprintf(line, sizeof line, "insns=%" PRIu64 "\n", executed);
    qemu_plugin_outs(line);
}

QEMU_PLUGIN_EXPORT int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info, int argc,
                                           char **argv)
{
    (void)info;
    (void)argc;
    (void)argv;
    qemu_plugin_register_vcpu_tb_trans_cb(id, on_translate);
    qemu_plugin_register_atexit_cb(id, on_exit, NULL);
    return 0;
}
