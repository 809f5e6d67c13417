/*
 * clean.c — a program whose marked functions let nothing escape.
 *
 *   clean PARSES CHECKSUMS
 *
 * parse_line() (marker) runs PARSES times and checksum() (marker) CHECKSUMS times; each
 * allocates a few objects through helpers, uses them and frees them before returning.
 * Nothing is touched after its region ended: the verdicts must be "no escapes seen".
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

__attribute__((noinline, noipa)) static char *make_token(const char *text, size_t len)
{
    char *token = malloc(len + 1);
    if (token == NULL)
        abort();
    memcpy(token, text, len);
    token[len] = '\0';
    return token;
}

__attribute__((noinline, noipa)) static long parse_line(int n)
{
    char line[64];
    snprintf(line, sizeof line, "key%d = value%d ; more%d", n, n * 7, n * 13);
    long sum = 0;
    char *tokens[8];
    int count = 0;
    for (char *s = line; *s && count < 8;) {
        while (*s == ' ')
            s++;
        size_t len = strcspn(s, " ");
        if (len == 0)
            break;
        tokens[count++] = make_token(s, len);
        s += len;
    }
    for (int i = 0; i < count; i++) {
        sum += (long)strlen(tokens[i]) * (i + 1) + tokens[i][0];
        free(tokens[i]);
    }
    return sum;
}

__attribute__((noinline, noipa)) static unsigned checksum(int n)
{
    unsigned *table = calloc(256, sizeof *table);
    if (table == NULL)
        abort();
    for (int i = 0; i < 256; i++)
        table[i] = (unsigned)(i * 2654435761u) ^ (unsigned)n;
    table = realloc(table, 512 * sizeof *table);
    if (table == NULL)
        abort();
    unsigned sum = 0;
    for (int i = 0; i < 256; i++)
        sum += table[i] >> (i % 7);
    free(table);
    return sum;
}

int main(int argc, char **argv)
{
    int parses = argc > 1 ? atoi(argv[1]) : 25;
    int checksums = argc > 2 ? atoi(argv[2]) : 7;
    long total = 0;
    for (int i = 0; i < parses; i++)
        total += parse_line(i);
    unsigned sum = 0;
    for (int i = 0; i < checksums; i++)
        sum ^= checksum(i);
    printf("parsed %d lines: %ld; %d checksums: %u\n", parses, total, checksums, sum);
    return 0;
}
