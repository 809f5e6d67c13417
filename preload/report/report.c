/*
 * report.c — the report buffer, frames, backtraces and the one write (see report.h).
 *
 * Layer: preload, report.
 */
#include "report.h"

#include "core.h"
#include "log.h"
#include "symbolize.h"

#include <dlfcn.h>
#include <sched.h>
#include <string.h>
#include <unistd.h>

#define UNW_LOCAL_ONLY
#include <libunwind.h>

#define BACKTRACE_MAX_FRAMES 32

static spin_lock report_write_lock = SPIN_LOCK_INIT;
static struct unwind_fixup unwind_fixup;

void report_set_unwind_fixup(const struct unwind_fixup *fixup)
{
    unwind_fixup = *fixup;
}

/* Walks running now, and whether a fork keeps new ones out (report.h).  Both sides store
 * first and load second, sequentially consistent: either the walker sees the fork and backs
 * out, or the fork sees the walker and waits for it. */
static unsigned unwinds_running;
static bool unwinds_excluded;

bool report_unwind_begin(void)
{
    __atomic_fetch_add(&unwinds_running, 1, __ATOMIC_SEQ_CST);
    if (__atomic_load_n(&unwinds_excluded, __ATOMIC_SEQ_CST)) {
        __atomic_fetch_sub(&unwinds_running, 1, __ATOMIC_SEQ_CST);
        return false;
    }
    if (unwind_fixup.before)
        unwind_fixup.before();
    return true;
}

void report_unwind_end(void)
{
    if (unwind_fixup.after)
        unwind_fixup.after();
    __atomic_fetch_sub(&unwinds_running, 1, __ATOMIC_SEQ_CST);
}

void report_unwind_fork_prepare(void)
{
    __atomic_store_n(&unwinds_excluded, true, __ATOMIC_SEQ_CST);
    while (__atomic_load_n(&unwinds_running, __ATOMIC_SEQ_CST) != 0)
        sched_yield();
}

void report_unwind_fork_parent(void)
{
    __atomic_store_n(&unwinds_excluded, false, __ATOMIC_SEQ_CST);
}

void report_unwind_fork_child(void)
{
    /* The child's only thread: counts of threads caught backing out are gone with them. */
    __atomic_store_n(&unwinds_running, 0, __ATOMIC_SEQ_CST);
    __atomic_store_n(&unwinds_excluded, false, __ATOMIC_SEQ_CST);
}

void report_init(struct report *report)
{
    report->len = 0;
    report->text[0] = '\0';
}

void report_string(struct report *report, const char *s)
{
    size_t room = sizeof report->text - 1 - report->len;
    size_t len = strlen(s);
    if (len > room)
        len = room;
    memcpy(report->text + report->len, s, len);
    report->len += len;
    report->text[report->len] = '\0';
}

void report_hex(struct report *report, uintptr_t value)
{
    char digits[19];
    int n = 0;
    do {
        digits[n++] = "0123456789abcdef"[value & 15];
        value >>= 4;
    } while (value);
    char text[21] = "0x";
    for (int i = 0; i < n; i++)
        text[2 + i] = digits[n - 1 - i];
    text[2 + n] = '\0';
    report_string(report, text);
}

void report_decimal(struct report *report, uint64_t value)
{
    char digits[21];
    int n = 0;
    do {
        digits[n++] = (char)('0' + value % 10);
        value /= 10;
    } while (value);
    char text[21];
    for (int i = 0; i < n; i++)
        text[i] = digits[n - 1 - i];
    text[n] = '\0';
    report_string(report, text);
}

void report_frame(struct report *report, unsigned index, uintptr_t pc)
{
    report_frame_at(report, index, pc, index > 0);
}

void report_frame_at(struct report *report, unsigned index, uintptr_t pc, bool return_address)
{
    unsigned back = return_address ? 1 : 0;
    struct symbolized where = { .module = "" };
    report_string(report, "    #");
    report_decimal(report, index);
    report_string(report, " ");
    report_hex(report, pc);
    /* Name the instruction that made the call, not the one after it: pc - 1 stays inside
     * the calling function even when the call was its last instruction. */
    bool named = pc != 0 && symbolize(pc - back, &where);
    if (where.module[0]) {
        report_string(report, " ");
        report_string(report, where.module);
        report_string(report, "+");
        report_hex(report, where.module_offset + back);
    }
    if (named) {
        report_string(report, " (");
        report_string(report, where.symbol);
        report_string(report, "+");
        report_hex(report, where.symbol_offset + back);
        report_string(report, ")");
    }
    report_string(report, "\n");
}

void report_stack(struct report *report, uint32_t stack_id)
{
    const struct stack_record *stack = stack_table_get(stack_id);
    if (stack == NULL)
        return;
    for (unsigned i = 0; i < stack->depth; i++)
        report_frame(report, i, stack->pcs[i]);
}

void report_backtrace(struct report *report, void *ucontext, unsigned skip)
{
    unw_context_t context;
    unw_cursor_t cursor;
    int status;
    if (!report_unwind_begin()) {
        report_string(report, "    (no backtrace: the process was forking)\n");
        return;
    }
    if (ucontext) {
        memcpy(&context, ucontext, sizeof context < sizeof(ucontext_t) ? sizeof context : sizeof(ucontext_t));
        status = unw_init_local2(&cursor, &context, UNW_INIT_SIGNAL_FRAME);
    } else {
        unw_getcontext(&context);
        status = unw_init_local(&cursor, &context);
    }
    if (status != 0) {
        report_unwind_end();
        report_string(report, "    (no backtrace: libunwind could not start)\n");
        return;
    }
    unsigned index = 0;
    do {
        unw_word_t pc = 0;
        if (unw_get_reg(&cursor, UNW_REG_IP, &pc) != 0 || pc == 0)
            break;
        if (skip) {
            skip--;
            continue;
        }
        report_frame(report, index++, (uintptr_t)pc);
    } while (index < BACKTRACE_MAX_FRAMES && unw_step(&cursor) > 0);
    report_unwind_end();
}

void report_emit(const struct report *report)
{
    spin_lock_acquire(&report_write_lock);
    log_write(report->text, report->len);
    spin_lock_release(&report_write_lock);
}

void report_lock(void)
{
    spin_lock_acquire(&report_write_lock);
}

void report_unlock(void)
{
    spin_lock_release(&report_write_lock);
}

void report_fork_child(void)
{
    spin_lock_reset(&report_write_lock);
}

void report_warm_up(void)
{
    struct report report;
    Dl_info info;
    report_init(&report);
    report_backtrace(&report, NULL, 0);
    dladdr((void *)report_warm_up, &info);
}
