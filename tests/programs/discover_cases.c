/*
 * discover_cases.c — functions whose right answer for `scripts/arenashim discover` is known.
 *
 *   discover_cases [ROUNDS]
 *
 * Knows nothing of arenashim.  Each function below is called ROUNDS times (default 400) from
 * main:
 *   handle_clean         builds a tree of 60 objects and frees it before returning: never
 *                        escapes, and allocates the most: the best candidate.
 *   handle_keep          keeps 1 object in 10 in a global list, freed on a later call: each
 *                        kept object escapes (its site is keep_one).
 *   handle_cross_thread  hands 1 object in 4 to a consumer thread, which frees it: escapes
 *                        by another thread.
 *   handle_leaky         frees 9 objects of 10 and forgets the tenth: leaks, no escape (a
 *                        region would reclaim the leak).
 *   recurse              seven levels deep, every level allocates; the outermost call frees
 *                        everything: clean, judged by its outermost frame (the inner calls
 *                        return before the objects they made are freed).
 *   alloc_in_a_loop      (assembly) allocates and frees in a loop whose target lies 3 bytes
 *                        into the function: clean, but a marker cannot be hooked there.
 *   alloc_after_jump     (assembly) starts with a jump: too short to hook.
 *   tail_outer           (assembly) tail-calls tail_inner, whose object its caller keeps:
 *                        it escapes tail_outer although tail_outer's frame is gone.
 * Prints "OK discover_cases" and a checksum.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NOINLINE __attribute__((noinline, noclone))
/* The compiler may drop a malloc whose object goes nowhere: this makes every object real. */
#define OPAQUE(p) __asm__ volatile("" : : "g"(p) : "memory")

/* alloc_in_a_loop(count): malloc+free count times; the loop starts at +3. */
void alloc_in_a_loop(unsigned count);
__asm__(".text\n"
        ".globl alloc_in_a_loop\n"
        ".type alloc_in_a_loop, @function\n"
        "alloc_in_a_loop:\n"
        "    .cfi_startproc\n"
        "    push %rbx\n"
        "    .cfi_def_cfa_offset 16\n"
        "    .cfi_offset %rbx, -16\n"
        "    mov %edi, %ebx\n"
        "1:  mov $48, %edi\n"
        "    call malloc@PLT\n"
        "    mov %rax, %rdi\n"
        "    call free@PLT\n"
        "    sub $1, %ebx\n"
        "    jnz 1b\n"
        "    pop %rbx\n"
        "    .cfi_def_cfa_offset 8\n"
        "    ret\n"
        "    .cfi_endproc\n"
        ".size alloc_in_a_loop, .-alloc_in_a_loop\n");

/* alloc_after_jump(): malloc+free one object; its first instruction jumps (as compiled
 * loops often start), so the 5 bytes a hook displaces end early: "too short". */
void alloc_after_jump(void);
__asm__(".text\n"
        ".globl alloc_after_jump\n"
        ".type alloc_after_jump, @function\n"
        "alloc_after_jump:\n"
        "    .cfi_startproc\n"
        "    jmp 1f\n"
        "1:  sub $8, %rsp\n"
        "    .cfi_def_cfa_offset 16\n"
        "    mov $40, %edi\n"
        "    call malloc@PLT\n"
        "    mov %rax, %rdi\n"
        "    call free@PLT\n"
        "    add $8, %rsp\n"
        "    .cfi_def_cfa_offset 8\n"
        "    ret\n"
        "    .cfi_endproc\n"
        ".size alloc_after_jump, .-alloc_after_jump\n");

struct node {
    struct node *left, *right;
    uint64_t value;
    char payload[40];
};

static uint64_t checksum;

static NOINLINE struct node *build(unsigned count, uint64_t seed)
{
    struct node *root = NULL;
    for (unsigned i = 0; i < count; i++) {
        struct node *n = calloc(1, sizeof *n);
        n->value = seed * 31 + i;
        snprintf(n->payload, sizeof n->payload, "node %u", i);
        n->left = root;
        root = n;
    }
    return root;
}

static NOINLINE void release(struct node *n)
{
    while (n) {
        struct node *next = n->left;
        checksum += n->value;
        free(n);
        n = next;
    }
}

NOINLINE void handle_clean(unsigned round)
{
    struct node *tree = build(60, round);
    release(tree);
}

static struct node *kept[64];
static unsigned kept_count;

static NOINLINE void keep_one(uint64_t value)
{
    struct node *n = malloc(sizeof *n);
    OPAQUE(n);
    n->value = value;
    n->left = n->right = NULL;
    kept[kept_count++ % 64] = n;
}

NOINLINE void handle_keep(unsigned round)
{
    /* The objects kept by the previous call are freed now, after it returned: escapes. */
    for (unsigned i = 0; i < kept_count && i < 64; i++) {
        if (kept[i]) {
            checksum += kept[i]->value;
            free(kept[i]);
            kept[i] = NULL;
        }
    }
    kept_count = 0;
    for (unsigned i = 0; i < 10; i++) {
        if (i == 3) {
            keep_one(round * 10 + i);
            continue;
        }
        struct node *n = malloc(sizeof *n);
        OPAQUE(n);
        n->value = i;
        checksum += n->value;
        free(n);
    }
}

/* The consumer thread: frees what it is handed. */
static pthread_mutex_t handoff_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t handoff_ready = PTHREAD_COND_INITIALIZER;
static struct node *handoff[1024];
static unsigned handoff_count;
static int handoff_done;

static void *consumer(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&handoff_lock);
    for (;;) {
        while (handoff_count == 0 && !handoff_done)
            pthread_cond_wait(&handoff_ready, &handoff_lock);
        while (handoff_count > 0) {
            struct node *n = handoff[--handoff_count];
            checksum += n->value;
            free(n);
        }
        if (handoff_done)
            break;
    }
    pthread_mutex_unlock(&handoff_lock);
    return NULL;
}

NOINLINE void handle_cross_thread(unsigned round)
{
    for (unsigned i = 0; i < 8; i++) {
        struct node *n = malloc(sizeof *n);
        OPAQUE(n);
        n->value = round + i;
        if (i % 4 == 0) {
            pthread_mutex_lock(&handoff_lock);
            if (handoff_count < 1024) {
                handoff[handoff_count++] = n;
                n = NULL;
            }
            pthread_cond_signal(&handoff_ready);
            pthread_mutex_unlock(&handoff_lock);
        }
        free(n);
    }
}

NOINLINE void handle_leaky(unsigned round)
{
    for (unsigned i = 0; i < 10; i++) {
        struct node *n = malloc(sizeof *n);
        OPAQUE(n);
        n->value = round + i;
        checksum += n->value;
        if (i != 9)
            free(n); /* the tenth is forgotten */
    }
}

/* tail_inner(n): a new object the caller owns. */
NOINLINE struct node *tail_inner(unsigned n)
{
    struct node *made = malloc(sizeof *made);
    made->value = n;
    return made;
}

/* tail_outer(n): allocates and frees a scratch object, then tail-calls tail_inner (jmp): the
 * object it returns is made after tail_outer's own frame is gone, yet inside the call a
 * region on tail_outer would span.  (Assembly, so the tail call is certain.) */
struct node *tail_outer(unsigned n);
__asm__(".text\n"
        ".globl tail_outer\n"
        ".type tail_outer, @function\n"
        "tail_outer:\n"
        "    .cfi_startproc\n"
        "    push %rbx\n"
        "    .cfi_def_cfa_offset 16\n"
        "    .cfi_offset %rbx, -16\n"
        "    mov %edi, %ebx\n"
        "    mov $24, %edi\n"
        "    call malloc@PLT\n"
        "    mov %rax, %rdi\n"
        "    call free@PLT\n"
        "    mov %ebx, %edi\n"
        "    pop %rbx\n"
        "    .cfi_def_cfa_offset 8\n"
        "    jmp tail_inner\n"
        "    .cfi_endproc\n"
        ".size tail_outer, .-tail_outer\n");

/* Keeps what tail_outer returns past its return: it escapes tail_outer (and tail_inner). */
NOINLINE void handle_tail(unsigned round)
{
    struct node *n = tail_outer(round);
    OPAQUE(n);
    checksum += n->value;
    free(n);
}

/* Every level allocates and passes its list down; the outermost call (depth == top) frees all
 * of it before returning.  Objects of the inner calls outlive those calls, not the outermost. */
NOINLINE struct node *recurse(unsigned depth, unsigned top, struct node *list)
{
    struct node *n = malloc(sizeof *n);
    n->value = depth;
    n->left = list;
    struct node *all = depth > 0 ? recurse(depth - 1, top, n) : n;
    if (depth == top) {
        release(all);
        return NULL;
    }
    return all;
}

int main(int argc, char **argv)
{
    unsigned rounds = argc > 1 ? (unsigned)atoi(argv[1]) : 400;
    pthread_t thread;
    if (pthread_create(&thread, NULL, consumer, NULL) != 0)
        return 1;
    for (unsigned round = 0; round < rounds; round++) {
        handle_clean(round);
        handle_keep(round);
        handle_cross_thread(round);
        handle_leaky(round);
        handle_tail(round);
        recurse(6, 6, NULL);
        alloc_in_a_loop(5);
        alloc_after_jump();
    }
    pthread_mutex_lock(&handoff_lock);
    handoff_done = 1;
    pthread_cond_signal(&handoff_ready);
    pthread_mutex_unlock(&handoff_lock);
    pthread_join(thread, NULL);
    for (unsigned i = 0; i < 64; i++)
        free(kept[i]);
    printf("checksum %llu\nOK discover_cases\n", (unsigned long long)checksum);
    return 0;
}
