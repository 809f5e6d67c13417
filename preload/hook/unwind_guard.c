/*
 * unwind_guard.c — keeping the shadow stack right when frames are left without returning.
 *
 * Layer: preload, hook.  A hooked function's return address is the exit stub, so whatever leaves
 * frames by another way must be told:
 *
 *   longjmp family   longjmp, _longjmp, siglongjmp, __longjmp_chk: the target stack pointer
 *                    is read from the jmp_buf (mangled with the pointer guard); every shadow
 *                    entry below it ends its region before the jump.
 *   C++ exceptions   before the unwinder walks (_Unwind_RaiseException, _Unwind_Resume,
 *                    _Unwind_Resume_or_Rethrow, _Unwind_ForcedUnwind for thread
 *                    cancellation) every hijacked return address is put back, so the
 *                    unwinder sees real frames; regions stay open while destructors run.  At
 *                    __cxa_begin_catch the frames below the catching one are gone: their
 *                    regions end, and the stub goes back into the frames still alive.
 *   exception object __cxa_allocate_exception runs with regions hidden, so the exception
 *                    never lives in the region it escapes.
 *   backtrace()      walks with the real return addresses in place.
 *
 * The real functions are found with dlsym(RTLD_NEXT) at start-up.
 */
#include "unwind_guard.h"

#include <dlfcn.h>
#include <execinfo.h>
#include <setjmp.h>
#include <string.h>

#include "hook.h"

typedef int unwind_reason; /* _Unwind_Reason_Code */

static void (*real_longjmp)(struct __jmp_buf_tag *, int);
static void (*real__longjmp)(struct __jmp_buf_tag *, int);
static void (*real_siglongjmp)(struct __jmp_buf_tag *, int);
static void (*real_longjmp_chk)(struct __jmp_buf_tag *, int);
static unwind_reason (*real_raise_exception)(void *);
static void (*real_resume)(void *);
static unwind_reason (*real_resume_or_rethrow)(void *);
static unwind_reason (*real_forced_unwind)(void *, void *, void *);
static void *(*real_begin_catch)(void *);
static void *(*real_allocate_exception)(size_t);
static void *(*real_allocate_dependent_exception)(void);
static int (*real_backtrace)(void **, int);

/* The C++ runtime may be loaded after us (dlopen of a C++ library): look it up on first use. */
#define RESOLVE(pointer, name)                                                     \
    do {                                                                           \
        if (__builtin_expect((pointer) == NULL, 0))                                \
            *(void **)&(pointer) = dlsym(RTLD_NEXT, name);                         \
    } while (0)

void unwind_guard_init(void)
{
    real_longjmp = dlsym(RTLD_NEXT, "longjmp");
    real__longjmp = dlsym(RTLD_NEXT, "_longjmp");
    real_siglongjmp = dlsym(RTLD_NEXT, "siglongjmp");
    real_longjmp_chk = dlsym(RTLD_NEXT, "__longjmp_chk");
    real_backtrace = dlsym(RTLD_NEXT, "backtrace");
}

static void before_jump(struct __jmp_buf_tag *env)
{
    if (hook_shadow && hook_shadow->depth)
        shadow_unwind_to(jmpbuf_stack_pointer(env));
}

EXPORTED __attribute__((noreturn)) void longjmp(struct __jmp_buf_tag env[1], int value)
{
    RESOLVE(real_longjmp, "longjmp"); /* also before start-up (another library's constructor) */
    before_jump(env);
    real_longjmp(env, value);
    __builtin_unreachable();
}

EXPORTED __attribute__((noreturn)) void _longjmp(struct __jmp_buf_tag env[1], int value)
{
    RESOLVE(real__longjmp, "_longjmp"); /* also before start-up (another library's constructor) */
    before_jump(env);
    real__longjmp(env, value);
    __builtin_unreachable();
}

EXPORTED __attribute__((noreturn)) void siglongjmp(struct __jmp_buf_tag env[1], int value)
{
    RESOLVE(real_siglongjmp, "siglongjmp"); /* also before start-up (another library's constructor) */
    before_jump(env);
    real_siglongjmp(env, value);
    __builtin_unreachable();
}

EXPORTED __attribute__((noreturn)) void __longjmp_chk(struct __jmp_buf_tag *env, int value)
{
    RESOLVE(real_longjmp_chk, "__longjmp_chk"); /* also before start-up (another library's constructor) */
    before_jump(env);
    real_longjmp_chk(env, value);
    __builtin_unreachable();
}

EXPORTED unwind_reason _Unwind_RaiseException(void *exception)
{
    RESOLVE(real_raise_exception, "_Unwind_RaiseException");
    shadow_restore_return_addresses();
    return real_raise_exception(exception);
}

EXPORTED void _Unwind_Resume(void *exception)
{
    RESOLVE(real_resume, "_Unwind_Resume");
    shadow_restore_return_addresses();
    real_resume(exception);
    __builtin_unreachable();
}

EXPORTED unwind_reason _Unwind_Resume_or_Rethrow(void *exception)
{
    RESOLVE(real_resume_or_rethrow, "_Unwind_Resume_or_Rethrow");
    shadow_restore_return_addresses();
    return real_resume_or_rethrow(exception);
}

EXPORTED unwind_reason _Unwind_ForcedUnwind(void *exception, void *stop, void *argument)
{
    RESOLVE(real_forced_unwind, "_Unwind_ForcedUnwind");
    shadow_restore_return_addresses();
    return real_forced_unwind(exception, stop, argument);
}

EXPORTED void *__cxa_begin_catch(void *exception)
{
    RESOLVE(real_begin_catch, "__cxa_begin_catch");
    /* The catching frame is our caller: everything below its stack pointer is gone. */
    uintptr_t catching_frame = (uintptr_t)__builtin_frame_address(0) + 16;
    if (hook_shadow && hook_shadow->depth)
        shadow_reinstall_return_addresses(catching_frame);
    return real_begin_catch(exception);
}

static void *with_regions_hidden(void *(*function)(size_t), size_t size)
{
    struct region *saved = bound_region;
    bound_region = NULL;
    void *result = function(size);
    bound_region = saved;
    return result;
}

EXPORTED void *__cxa_allocate_exception(size_t size)
{
    RESOLVE(real_allocate_exception, "__cxa_allocate_exception");
    return with_regions_hidden(real_allocate_exception, size);
}

EXPORTED void *__cxa_allocate_dependent_exception(void)
{
    RESOLVE(real_allocate_dependent_exception, "__cxa_allocate_dependent_exception");
    struct region *saved = bound_region;
    bound_region = NULL;
    void *result = real_allocate_dependent_exception();
    bound_region = saved;
    return result;
}

EXPORTED int backtrace(void **buffer, int size)
{
    RESOLVE(real_backtrace, "backtrace");
    void *frames[257];
    if (size <= 0)
        return 0;
    if (size > 256)
        return real_backtrace(buffer, size); /* rare: then our own frame shows first */
    /* The unwinder cannot step through the exit stub: it walks with the real return
     * addresses in place, and the stubs go back after.  Frame 0 is this function. */
    bool hooked = hook_shadow && hook_shadow->depth;
    if (hooked)
        shadow_restore_return_addresses();
    int count = real_backtrace(frames, size + 1);
    if (hooked)
        shadow_reinstall_all();
    if (count <= 1)
        return 0;
    memcpy(buffer, frames + 1, (size_t)(count - 1) * sizeof(void *));
    return count - 1;
}
