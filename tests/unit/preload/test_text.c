/*
 * test_text.c — preload/lib/text.c: JSON string literals are valid UTF-8 JSON whatever bytes
 * they are given (the statistics' "command" holds the process's arguments, which may be any
 * bytes: Python's test_cmd_line_script passes Latin-1 ones), and the snprintf contract.
 */
#include "check.h"

#include "text.h"

/* text_json_string(s) into a fresh buffer; returns the buffer (static: one at a time). */
static const char *json_of(const char *s)
{
    static char buffer[256];
    struct text text = { buffer, sizeof buffer, 0 };
    text_json_string(&text, s);
    text_finish(&text);
    return buffer;
}

#define CHECK_JSON(input, expected)                                                            \
    do {                                                                                       \
        const char *got = json_of(input);                                                      \
        CHECK_MSG(strcmp(got, expected) == 0, "%s gave %s, expected %s", #input, got, expected); \
    } while (0)

static void test_escapes(void)
{
    CHECK_JSON("plain", "\"plain\"");
    CHECK_JSON("a\"b\\c", "\"a\\\"b\\\\c\"");
    CHECK_JSON("tab\there\nnl", "\"tab\\u0009here\\u000anl\"");
    CHECK_JSON("", "\"\"");
}

static void test_utf8_kept(void)
{
    /* é (2 bytes), € (3), U+10FFFF and 😀 (4), U+D7FF (3, just below the surrogates). */
    CHECK_JSON("caf\xc3\xa9", "\"caf\xc3\xa9\"");
    CHECK_JSON("\xe2\x82\xac 1", "\"\xe2\x82\xac 1\"");
    CHECK_JSON("\xf4\x8f\xbf\xbf\xf0\x9f\x98\x80", "\"\xf4\x8f\xbf\xbf\xf0\x9f\x98\x80\"");
    CHECK_JSON("\xed\x9f\xbf", "\"\xed\x9f\xbf\"");
}

static void test_not_utf8_replaced(void)
{
    /* A Latin-1 byte, a stray continuation byte, an overlong '/', a surrogate (U+D800), past
     * U+10FFFF, bytes that never occur, and a sequence cut by the end of the string: each
     * byte that starts no well-formed sequence becomes one U+FFFD escape. */
    CHECK_JSON("caf\xe7", "\"caf\\ufffd\"");
    CHECK_JSON("\x80x", "\"\\ufffdx\"");
    CHECK_JSON("\xc0\xaf", "\"\\ufffd\\ufffd\"");
    CHECK_JSON("\xed\xa0\x80", "\"\\ufffd\\ufffd\\ufffd\"");
    CHECK_JSON("\xf4\x90\x80\x80", "\"\\ufffd\\ufffd\\ufffd\\ufffd\"");
    CHECK_JSON("\xff\xfe", "\"\\ufffd\\ufffd\"");
    CHECK_JSON("ab\xe2\x82", "\"ab\\ufffd\\ufffd\"");
    /* A valid sequence right after an invalid byte is kept. */
    CHECK_JSON("\xe7\xc3\xa9", "\"\\ufffd\xc3\xa9\"");
}

static void test_length_counted_past_the_end(void)
{
    char small[6];
    struct text text = { small, sizeof small, 0 };
    text_json_string(&text, "caf\xe7 au lait");
    size_t needed = text_finish(&text);
    CHECK_MSG(needed == strlen("\"caf\\ufffd au lait\""), "needed %zu", needed);
    CHECK_MSG(strcmp(small, "\"caf\\") == 0, "the buffer holds %s", small);
}

static const struct test_case cases[] = {
    TEST_CASE(escapes),
    TEST_CASE(utf8_kept),
    TEST_CASE(not_utf8_replaced),
    TEST_CASE(length_counted_past_the_end),
};

int main(int argc, char **argv)
{
    return check_main(argc, argv, cases, sizeof cases / sizeof cases[0]);
}
