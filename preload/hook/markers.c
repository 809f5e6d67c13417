/*
 * markers.c — region markers from ARENASHIM_REGIONS.
 *
 * Layer: preload.  Grammar: SPEC[,SPEC...] with SPEC one of
 *
 *     FUNC            a function in the executable or any loaded library (first found)
 *     MODULE:FUNC     a function of the module whose file name is MODULE ("main" is the
 *                     executable; "libxml2.so" matches "libxml2.so.2")
 *     MODULE+0xOFF    the function starting at OFF from the module's load base (as nm prints
 *                     it), for stripped binaries; its bounds come from .eh_frame_hdr
 *
 * Lifecycle of a marker: parsed at start-up -> resolved (now, or when the library that
 * holds it is loaded) -> hooked, or refused with a reason.  A marker's id is its place in
 * ARENASHIM_REGIONS: the core counts its regions and bytes by id (marker_counters_of), the
 * report layer keeps its name and state (marker_table.h).
 */
#include "markers.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <sys/stat.h>
#include <sys/auxv.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "elf_reader.h"
#include "hook.h"
#include "log.h"
#include "marker_spec.h"
#include "marker_table.h"
#include "symbolize.h"
#include "process.h"

static struct marker_spec *specs; /* marker_count of them, in metadata */
static unsigned marker_count;
/* The process the user started (not one it spawned, nor a launcher such as strace or sh
 * that starts it): only there is a marker that names nothing an error.  Programs run shells
 * and helpers that inherit ARENASHIM_REGIONS; a marker meant for the program must not kill
 * them. */
static bool root_process;
static spin_lock markers_lock = SPIN_LOCK_INIT;
static bool hooks_ready;
static bool link_map_hooked;

/* The modules loaded at the last look, by load base: a dlopen searches only new ones, and
 * one that vanished was unloaded (dlclose), its hooks gone with its code. */
#define MODULES_TRACKED 1024
struct tracked_module {
    uintptr_t load_base, text_start;
};
static struct tracked_module seen_modules[MODULES_TRACKED];
static unsigned seen_count;

/* Where each marker is hooked: its hook index stays the marker's when its library is
 * unloaded and loaded again (hooked again there, with the same trampoline). */
struct marker_hook {
    uint32_t hook;
    bool has_hook;   /* hook is this marker's index */
    bool hooked;     /* and live, in the module at module_base */
    uintptr_t module_base;
};
static struct marker_hook *marker_hooks;

static bool module_matches(const struct loaded_module *module, const char *name)
{
    if (strcmp(name, "main") == 0)
        return module->is_executable;
    return elf_file_name_matches(module->file_name, name);
}

struct resolve_context {
    struct marker_spec *spec;
    unsigned marker;
    bool only_new;
    bool found;
    bool module_seen;
    struct loaded_module module;
    struct function_bounds bounds;
};

static bool module_is_new(uintptr_t base)
{
    for (unsigned i = 0; i < seen_count; i++)
        if (seen_modules[i].load_base == base)
            return false;
    return true;
}

static bool resolve_in_module(const struct loaded_module *module, void *data)
{
    struct resolve_context *context = data;
    struct marker_spec *spec = context->spec;
    if (context->only_new && !module_is_new(module->load_base))
        return true;
    if (spec->form != SPEC_FUNCTION && !module_matches(module, spec->module))
        return true;
    context->module_seen = true;
    bool found;
    if (spec->form == SPEC_MODULE_OFFSET)
        found = elf_function_at(module, module->load_base + spec->offset, &context->bounds) ||
                (module->is_executable && module->load_base == 0 &&
                 elf_function_at(module, spec->offset, &context->bounds));
    else
        found = elf_find_function(module, spec->function, &context->bounds);
    if (!found)
        return true;
    context->found = true;
    context->module = *module;
    return false;
}

struct module_list {
    struct tracked_module modules[MODULES_TRACKED];
    unsigned count;
};

static bool list_module(const struct loaded_module *module, void *data)
{
    struct module_list *list = data;
    if (list->count < MODULES_TRACKED)
        list->modules[list->count++] = (struct tracked_module){ module->load_base, module->text_start };
    return true;
}

/* A module is gone: its markers wait for it to come back, and what was learnt of its code
 * (branch targets, symbols) is dropped, since another library may be loaded there. */
static void forget_module(const struct tracked_module *gone)
{
    for (unsigned i = 0; i < marker_count; i++) {
        struct marker_hook *h = &marker_hooks[i];
        if (!h->hooked || h->module_base != gone->load_base)
            continue;
        h->hooked = false;
        __atomic_store_n(&hook_table[h->hook].function, 0, __ATOMIC_RELEASE);
        specs[i].done = false;
    }
    hook_patch_forget_module(gone->text_start);
    symbolize_forget_module(gone->load_base);
}

static struct module_list loaded_now;

/* The modules loaded now become the last look (resolve_in_module's "new" is against it). */
static void track_modules(void)
{
    loaded_now.count = 0;
    elf_for_each_module(list_module, &loaded_now);
    memcpy(seen_modules, loaded_now.modules, loaded_now.count * sizeof loaded_now.modules[0]);
    seen_count = loaded_now.count;
}

/* Modules of the last look that are no longer loaded are forgotten, and leave the last look:
 * one loaded again, even at the same address, is new. */
static void forget_unloaded_modules(void)
{
    loaded_now.count = 0;
    elf_for_each_module(list_module, &loaded_now);
    unsigned kept = 0;
    for (unsigned i = 0; i < seen_count; i++) {
        bool present = false;
        for (unsigned k = 0; k < loaded_now.count && !present; k++)
            present = loaded_now.modules[k].load_base == seen_modules[i].load_base &&
                      loaded_now.modules[k].text_start == seen_modules[i].text_start;
        if (present)
            seen_modules[kept++] = seen_modules[i];
        else
            forget_module(&seen_modules[i]);
    }
    seen_count = kept;
}

/* Functions that must never be marked: arenashim's own code and its allocator (a region
 * around malloc would allocate from itself), and an entry point, which no call enters (its
 * stack top is no return address). */
static bool forbidden_function(const struct resolve_context *context, char *why, size_t why_len)
{
    /* dladdr of the function would scan its module's symbols: once per marker adds up
     * when a library's whole API is marked.  Our own base is looked up once. */
    static uintptr_t own_base;
    Dl_info self;
    if (own_base == 0 && dladdr((void *)forbidden_function, &self))
        own_base = (uintptr_t)self.dli_fbase;
    if (own_base != 0 && context->module.load_base == own_base) {
        snprintf(why, why_len, "it is part of arenashim itself");
        return true;
    }
    const char *name = context->module.file_name;
    if (strncmp(name, "libjemalloc.so", 14) == 0) {
        snprintf(why, why_len, "it is part of jemalloc, the allocator arenashim serves the heap with");
        return true;
    }
    if (context->bounds.start == getauxval(AT_ENTRY)) {
        snprintf(why, why_len, "it is the program's entry point, which is jumped to, not called");
        return true;
    }
    return false;
}

static bool hook_marker(unsigned marker, const struct resolve_context *context, char *why, size_t why_len)
{
    if (forbidden_function(context, why, why_len))
        return false;
    if (context->bounds.is_ifunc) {
        snprintf(why, why_len, "it is a GNU indirect function (IFUNC) resolver, not the function "
                 "itself; mark the implementation it selects");
        return false;
    }
    if (hook_count == HOOKS_MAX && !marker_hooks[marker].has_hook) {
        snprintf(why, why_len, "too many hooks");
        return false;
    }
    for (unsigned i = 0; i < hook_count; i++)
        if (hook_table[i].function == context->bounds.start) {
            snprintf(why, why_len, "the same function is already marked by '%s'",
                     marker_name(hook_table[i].marker));
            return false;
        }
    struct marker_hook *h = &marker_hooks[marker];
    unsigned index = h->has_hook ? h->hook : hook_count;
    hook_table[index].marker = (int32_t)marker;
    hook_table[index].kind = HOOK_MARKER;
    hook_table[index].function = context->bounds.start;
    if (!hook_patch(context->bounds.start, context->bounds.end, context->module.text_start,
                    context->module.text_end, index, true, &hook_table[index].resume, why, why_len)) {
        hook_table[index].function = 0;
        return false;
    }
    if (!h->has_hook)
        __atomic_store_n(&hook_count, index + 1, __ATOMIC_RELEASE);
    h->hook = index;
    h->has_hook = h->hooked = true;
    h->module_base = context->module.load_base;
    return true;
}

struct module_query {
    uintptr_t address;
    struct loaded_module module;
    bool found;
};

/* By the address itself, not dladdr's base: a non-PIE executable (python3) is mapped at its
 * link address, with a load base of 0 that dladdr reports as 0x400000. */
static bool find_module_with_text(const struct loaded_module *module, void *data)
{
    struct module_query *query = data;
    if (query->address < module->text_start || query->address >= module->text_end)
        return true;
    query->module = *module;
    query->found = true;
    return false;
}

/* The loaded module that holds function, with the function's bounds; false if unknown. */
static bool locate_function(uintptr_t function, struct resolve_context *context)
{
    struct module_query query;
    memset(&query, 0, sizeof query);
    memset(context, 0, sizeof *context);
    query.address = function;
    elf_for_each_module(find_module_with_text, &query);
    if (!query.found || !elf_function_at(&query.module, function, &context->bounds))
        return false;
    context->module = query.module;
    return true;
}

/* Library constructors run inside dlopen and must not allocate into the caller's region:
 * libc's dlopen and dlmopen are hooked at their entry, where regions are suspended (shim.h).
 * Their return address is left alone, so the caller's RUNPATH and $ORIGIN stay in effect. */
static void install_dlopen_hooks(void)
{
    static const char *names[] = { "dlopen", "dlmopen" };
    for (unsigned i = 0; i < 2; i++) {
        void *function = dlsym(RTLD_NEXT, names[i]);
        struct resolve_context context;
        char why[400];
        if (function == NULL || hook_count == HOOKS_MAX || !locate_function((uintptr_t)function, &context))
            continue;
        unsigned index = hook_count;
        hook_table[index].marker = 0;
        hook_table[index].kind = HOOK_DLOPEN;
        hook_table[index].function = context.bounds.start;
        if (hook_patch(context.bounds.start, context.bounds.end, context.module.text_start,
                       context.module.text_end, index, false, &hook_table[index].resume, why, sizeof why))
            __atomic_store_n(&hook_count, index + 1, __ATOMIC_RELEASE);
        else if (core_config.options.verbose >= 1)
            log_warn("cannot hook %s (%s): constructors of libraries it loads may allocate into "
                     "the caller's region", names[i], why);
    }
}

/* Markers in libraries loaded later are resolved when the dynamic linker reports a change of
 * its object list through r_debug.r_brk (_dl_debug_state, where debuggers put a breakpoint):
 * before the new objects are relocated and their constructors run, whoever loads them
 * (dlopen, dlmopen, the C library loading NSS or iconv modules).  The function is an empty
 * return; the patch also covers the alignment padding after it, which must belong to no
 * function (the next .eh_frame entry starts past the patch). */
static void install_link_map_hook(void)
{
    uintptr_t function = _r_debug.r_brk;
    struct resolve_context context;
    char why[400] = "no .eh_frame entry bounds it";
    if (function != 0 && hook_count < HOOKS_MAX && locate_function(function, &context)) {
        unsigned index = hook_count;
        hook_table[index].marker = 0;
        hook_table[index].kind = HOOK_LINK_MAP;
        hook_table[index].function = function;
        if (hook_patch_empty_function(function, context.bounds.end, index, &hook_table[index].resume,
                                      why, sizeof why)) {
            __atomic_store_n(&hook_count, index + 1, __ATOMIC_RELEASE);
            link_map_hooked = true;
            return;
        }
    }
    for (unsigned i = 0; i < marker_count; i++)
        if (!specs[i].done) {
            log_warn("cannot hook the dynamic linker's r_brk (%s): markers in libraries loaded "
                     "later will not resolve", why);
            return;
        }
}

static bool decide_root_process(void)
{
    char own[32];
    snprintf(own, sizeof own, "%d", (int)getpid());
    const char *root = getenv("ARENASHIM_ROOT_PID");
    if (root != NULL)
        return strcmp(root, own) == 0; /* exec without fork keeps the pid: still the root */
    if (process_is_launcher())
        return false; /* the program it starts will be the root */
    setenv("ARENASHIM_ROOT_PID", own, 1);
    return true;
}

static unsigned bad_marker_count;

/* An error in the root process (unless on_bad_marker=warn); a warning (verbose) elsewhere.
 * A function that was found but cannot be hooked is refused; one this program simply lacks
 * stays unresolved, except under on_bad_marker=warn, where the root process lists it as
 * refused with the reason (a whole API pasted in, some of it unhookable or absent). */
static void marker_problem(unsigned marker, const char *message, bool refused)
{
    bool warn_only = core_config.options.bad_markers_warn;
    if (root_process && !warn_only)
        log_fatal_startup("%s", message);
    if (refused || (root_process && warn_only))
        marker_table_refuse((int32_t)marker, message);
    bad_marker_count++;
    if (core_config.options.verbose >= 1)
        log_warn("%s", message);
}

/* Parses every spec first: a typo anywhere stops the program before anything is patched.
 * Returns how many there are. */
static unsigned parse_all(const char *text)
{
    unsigned count = 1;
    for (const char *p = text; *p; p++)
        count += *p == ',';
    if (count > MARKERS_MAX)
        log_fatal_startup("ARENASHIM_REGIONS: %u markers; at most %d are supported", count,
                          MARKERS_MAX);
    specs = metadata_alloc(count * sizeof *specs);
    marker_hooks = metadata_alloc(count * sizeof *marker_hooks);
    if (specs == NULL || marker_hooks == NULL || !marker_table_init(count) || !core_markers_init(count))
        log_fatal_startup("ARENASHIM_REGIONS: no memory for %u markers", count);
    char error[600];
    unsigned index = 0;
    for (const char *p = text;; index++) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        if (!marker_spec_parse(p, len, &specs[index], error, sizeof error))
            log_fatal_startup("%s", error);
        struct marker_entry *entry = marker_table_entry((int32_t)index);
        marker_spec_describe(entry->spec, sizeof entry->spec, &specs[index]);
        if (!comma)
            break;
        p = comma + 1;
    }
    return count;
}

/* The complaint about a marker that resolved nowhere: it names nothing at all, or its module
 * is loaded without such a function.  A marker whose module is not loaded yet waits. */
static void not_found(unsigned marker, const struct resolve_context *context)
{
    struct marker_spec *spec = &specs[marker];
    const char *name = marker_name((int32_t)marker);
    char error[600];
    if (spec->form == SPEC_FUNCTION) {
        spec->done = true;
        snprintf(error, sizeof error,
                 "ARENASHIM_REGIONS: marker '%s' names no function of the executable or any loaded "
                 "library; check the name with nm (C++ names are mangled), qualify it as MODULE:FUNC "
                 "for a library loaded later, or use MODULE+0xOFFSET for a stripped binary", name);
        marker_problem(marker, error, false);
    } else if (context->module_seen) {
        spec->done = true;
        snprintf(error, sizeof error,
                 "ARENASHIM_REGIONS: marker '%s': module '%s' is loaded but has no %s; check it with "
                 "nm (or nm -D), or use MODULE+0xOFFSET for a stripped binary", name, spec->module,
                 spec->form == SPEC_MODULE_OFFSET ? "function starting at that offset (.eh_frame_hdr)"
                                                  : "such function");
        marker_problem(marker, error, false);
    }
}

/* Resolves and hooks one marker among the loaded modules at start-up. */
static void resolve_at_startup(unsigned marker)
{
    struct resolve_context context;
    char why[600];
    memset(&context, 0, sizeof context);
    context.spec = &specs[marker];
    context.marker = marker;
    elf_for_each_module(resolve_in_module, &context);
    if (!context.found) {
        not_found(marker, &context);
        return;
    }
    specs[marker].done = true;
    if (!hook_marker(marker, &context, why, sizeof why)) {
        char message[700];
        snprintf(message, sizeof message, "ARENASHIM_REGIONS: cannot hook marker '%s': %s",
                 marker_name((int32_t)marker), why);
        marker_problem(marker, message, true);
        return;
    }
    marker_table_entry((int32_t)marker)->resolved = true;
    if (core_config.options.verbose >= 2)
        log_note("marker '%s' hooked at %#lx in %s", marker_name((int32_t)marker),
                 (unsigned long)context.bounds.start, context.module.path);
}

bool markers_arch_ready(char *why, size_t why_len)
{
    static int state; /* 0 not tried, 1 ready, -1 refused (why_len bytes of the reason kept) */
    static char reason[400];
    if (state == 0) {
        state = hook_arch_init(reason, sizeof reason) ? 1 : -1;
    }
    if (state < 0)
        snprintf(why, why_len, "%s", reason);
    return state > 0;
}

bool markers_check_hookable(uintptr_t function, char *why, size_t why_len)
{
    struct resolve_context context;
    if (!markers_arch_ready(why, why_len))
        return false;
    if (!locate_function(function, &context)) {
        snprintf(why, why_len, "no .eh_frame entry bounds it");
        return false;
    }
    if (forbidden_function(&context, why, why_len))
        return false;
    if (context.bounds.is_ifunc) {
        snprintf(why, why_len, "it is a GNU indirect function (IFUNC) resolver");
        return false;
    }
    return hook_patch_check(context.bounds.start, context.bounds.end, context.module.text_start,
                            context.module.text_end, why, why_len);
}

/* ARENASHIM_REGIONS=@FILE: the specs come from FILE, separated by commas, spaces or
 * newlines, '#' starting a comment to the end of the line (what discover proposes, or a
 * library's whole API, exceeds what an environment variable holds).  Returns the specs as
 * one comma-separated text in metadata, or NULL when the file has none. */
#define REGIONS_FILE_MAX ((size_t)64 << 20)
static const char *read_regions_file(const char *path)
{
    if (getauxval(AT_SECURE)) {
        /* The file would be read with privileges the user does not have, and its lines
         * echoed in error messages. */
        log_warn("secure-execution process: ARENASHIM_REGIONS=@%s is ignored", path);
        return NULL;
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0)
        log_fatal_startup("ARENASHIM_REGIONS: cannot read the marker file '%s': %s", path, strerror(errno));
    if (!S_ISREG(st.st_mode) || (size_t)st.st_size > REGIONS_FILE_MAX)
        log_fatal_startup("ARENASHIM_REGIONS: the marker file '%s' is not a regular file of at most %zu MiB",
                          path, REGIONS_FILE_MAX >> 20);
    size_t size = (size_t)st.st_size;
    char *raw = metadata_map(size + 1), *text = metadata_map(size + 1);
    if (raw == NULL || text == NULL)
        log_fatal_startup("ARENASHIM_REGIONS: no memory to read the marker file '%s'", path);
    size_t got = 0;
    while (got < size) {
        ssize_t n = read(fd, raw + got, size - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    close(fd);
    /* Comments out, every run of separators one comma. */
    size_t length = 0;
    bool in_comment = false;
    for (size_t i = 0; i < got; i++) {
        char c = raw[i];
        if (c == '\n')
            in_comment = false;
        else if (c == '#')
            in_comment = true;
        if (in_comment || c == ',' || c == ' ' || c == '\t' || c == '\n' || c == '\r') {
            if (length > 0 && text[length - 1] != ',')
                text[length++] = ',';
            continue;
        }
        text[length++] = c;
    }
    if (length > 0 && text[length - 1] == ',')
        length--;
    text[length] = '\0';
    return length ? text : NULL;
}

void markers_init(void)
{
    const char *text = getenv("ARENASHIM_REGIONS");
    char error[600];
    if (text != NULL && text[0] == '@')
        text = read_regions_file(text + 1);
    if (text == NULL || text[0] == '\0')
        return;
    unsigned count = parse_all(text);
    root_process = decide_root_process();
    if (core_config.heap_only)
        return; /* no chunk space (said at start-up): a region would serve nothing */
    if (!markers_arch_ready(error, sizeof error))
        log_fatal_startup("ARENASHIM_REGIONS: function markers cannot work here: %s", error);
    hooks_ready = true;
    marker_count = count;
    hook_set_marker_slots(count);
    for (unsigned i = 0; i < count; i++)
        resolve_at_startup(i);
    if (bad_marker_count && root_process && core_config.options.bad_markers_warn &&
        core_config.options.verbose == 0)
        log_warn("ARENASHIM_REGIONS: %u of %u markers refused or naming nothing (on_bad_marker=warn); "
                 "verbose=1 says why at start-up, stats=1 or stats_json at exit", bad_marker_count, count);
    elf_symbol_indexes_release();
    track_modules();
    install_dlopen_hooks();
    install_link_map_hook();
}

void markers_after_link_map_change(void)
{
    if (!hooks_ready)
        return;
    spin_lock_acquire(&markers_lock);
    forget_unloaded_modules();
    for (unsigned i = 0; i < marker_count; i++) {
        struct marker_spec *spec = &specs[i];
        if (spec->done)
            continue;
        struct resolve_context context;
        char why[400];
        memset(&context, 0, sizeof context);
        context.spec = spec;
        context.marker = i;
        context.only_new = true;
        elf_for_each_module(resolve_in_module, &context);
        if (!context.found)
            continue;
        spec->done = true;
        if (hook_marker(i, &context, why, sizeof why)) {
            marker_table_entry((int32_t)i)->resolved = true;
        } else {
            marker_table_refuse((int32_t)i, why);
            log_warn("marker '%s' resolved in a library loaded later but was not hooked: %s",
                     marker_name((int32_t)i), why);
        }
    }
    track_modules();
    elf_symbol_indexes_release();
    spin_lock_release(&markers_lock);
}

void markers_fork_child(void)
{
    spin_lock_reset(&markers_lock);
}

/* Why a marker that was neither hooked nor refused never resolved, for the exit note. */
static const char *unresolved_reason(const struct marker_spec *spec)
{
    if (!link_map_hooked)
        return "libraries loaded after start-up were not watched";
    if (spec->form == SPEC_FUNCTION)
        return "no module loaded in this process defines that function";
    return "its module was never loaded";
}

void markers_report_unresolved(void)
{
    if (core_config.heap_only || (!root_process && core_config.options.verbose == 0))
        return;
    /* Under on_bad_marker=warn the list may be a library's whole API: start-up said how many. */
    if (core_config.options.bad_markers_warn && core_config.options.verbose == 0)
        return;
    for (unsigned i = 0; i < marker_table_count(); i++) {
        const struct marker_entry *m = marker_table_entry((int32_t)i);
        if (m->refused)
            log_note("marker '%s' was refused: %s", m->spec, m->reason);
        else if (!m->resolved)
            log_note("marker '%s' never resolved: %s", m->spec, unresolved_reason(&specs[i]));
    }
}
