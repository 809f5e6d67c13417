/*
 * dangling.c — the reports of dangling accesses and of frees after region end.
 *
 * Layer: preload, report.  A dangling access (from the SIGSEGV handler, or a system-call
 * guard before the kernel would fail with EFAULT) is reported as the design promises: the
 * first line a script can match,
 *
 *     ==PID==ERROR: arenashim: use-after-region-free on address 0xADDR (READ|WRITE of region #N, marker 'NAME')
 *
 * then the access backtrace, the object hit and its allocation site (trace_allocs), where
 * the region began and where it ended, and the verdict line (ABORTING or CONTINUING).  The
 * buffers are static: the fault may come on a small alternate stack.
 */
#include "dangling.h"

#include <unistd.h>

#include "marker_table.h"
#include "report.h"

static spin_lock dangling_lock = SPIN_LOCK_INIT;
static spin_lock escaped_free_lock = SPIN_LOCK_INIT;

static void report_region_site(struct report *report, const char *what, uint32_t stack, uintptr_t pc)
{
    report_string(report, what);
    if (stack_table_get(stack))
        report_stack(report, stack);
    else
        report_frame_at(report, 0, pc, true); /* the return address of the begin/end call */
}

void report_dangling(const struct dangling_info *info, void *context, uint32_t site, bool write)
{
    static struct report report; /* static: the fault may come on a small alternate stack */
    spin_lock_acquire(&dangling_lock);
    report_init(&report);
    report_string(&report, "==");
    report_decimal(&report, (uint64_t)getpid());
    report_string(&report, "==ERROR: arenashim: use-after-region-free on address ");
    report_hex(&report, info->address);
    report_string(&report, write ? " (WRITE of region #" : " (READ of region #");
    report_decimal(&report, info->found_range ? info->range.region_id : 0);
    report_string(&report, ", marker '");
    report_string(&report, info->found_range ? marker_name(info->range.marker) : "(unknown)");
    report_string(&report, "')\n");
    report_string(&report, "  access backtrace:\n");
    /* From a system-call guard (no signal context) our own frames come first: skip them. */
    report_backtrace(&report, context, context ? 0 : 3);
    if (info->found_range) {
        const struct dead_range *r = &info->range;
        report_string(&report, "  the address is ");
        report_decimal(&report, info->address - r->start);
        report_string(&report, " bytes into the memory of region #");
        report_decimal(&report, r->region_id);
        report_string(&report, " [");
        report_hex(&report, r->start);
        report_string(&report, ", ");
        report_hex(&report, r->end);
        report_string(&report, ") of thread T");
        report_decimal(&report, r->thread_number);
        report_string(&report, "\n");
        const struct trace_record *object = trace_log_find(r->trace, info->address);
        if (object) {
            /* The object's record covers its header too (realloc and free read it). */
            report_string(&report, "  it is ");
            if (info->address < object->address) {
                report_decimal(&report, object->address - info->address);
                report_string(&report, " bytes before (in the header of) an object of ");
            } else {
                report_decimal(&report, info->address - object->address);
                report_string(&report, " bytes into an object of ");
            }
            report_decimal(&report, object->size);
            report_string(&report, " bytes at ");
            report_hex(&report, object->address);
            report_string(&report, ", allocated at:\n");
            report_stack(&report, site ? site : object->stack);
        } else {
            report_string(&report, core_config.options.trace_allocs
                                       ? "  allocation site: not sampled (trace_allocs=N traces one in N)\n"
                                       : "  allocation site: not recorded (run with trace_allocs=1)\n");
        }
        report_region_site(&report, "  region began at:\n", r->begin_stack, r->begin_pc);
        report_region_site(&report, "  region ended at:\n", r->end_stack, r->end_pc);
    }
    report_string(&report, "==");
    report_decimal(&report, (uint64_t)getpid());
    report_string(&report, core_config.options.on_dangling == ON_DANGLING_ABORT
                               ? "==ABORTING (on_dangling=abort)\n"
                               : "==CONTINUING (on_dangling=recover: the page is accessible again)\n");
    report_emit(&report);
    spin_lock_release(&dangling_lock);
}

/* free() of an object whose region has ended: with verbose, one report per allocation site
 * (or one in all, when allocations are not traced). */
void report_escaped_free(uintptr_t address)
{
    static uint32_t reported_sites[256];
    static unsigned reported_count;
    static int reported_untraced;
    static struct report report;
    spin_lock *lock = &escaped_free_lock;
    if (core_config.options.verbose == 0)
        return;
    struct dangling_info info;
    if (!dangling_lookup(address, &info) || !info.found_range)
        return;
    const struct trace_record *object = trace_log_find(info.range.trace, address);
    uint32_t site = object ? object->stack : 0;
    spin_lock_acquire(lock);
    bool seen = false;
    if (site) {
        for (unsigned i = 0; i < reported_count && !seen; i++)
            seen = reported_sites[i] == site;
        if (!seen && reported_count < 256)
            reported_sites[reported_count++] = site;
    } else {
        seen = reported_untraced++ > 0;
    }
    if (!seen) {
        report_init(&report);
        report_string(&report, "arenashim: free() of ");
        report_hex(&report, address);
        report_string(&report, " after its region #");
        report_decimal(&report, info.range.region_id);
        report_string(&report, " (marker '");
        report_string(&report, marker_name(info.range.marker));
        report_string(&report, "') ended: the object escaped its region");
        if (site) {
            report_string(&report, "; allocated at:\n");
            report_stack(&report, site);
        } else {
            report_string(&report, " (reported once; run with trace_allocs=1 to see allocation sites)\n");
        }
        report_emit(&report);
    }
    spin_lock_release(lock);
}

void dangling_fork_child(void)
{
    spin_lock_reset(&dangling_lock);
    spin_lock_reset(&escaped_free_lock);
}
