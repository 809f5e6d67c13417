/*
 * test_marker_spec.c — the ARENASHIM_REGIONS grammar (preload/hook/marker_spec.c): the three
 * forms, what each rejects and that no input overruns the record or the error buffer.
 */
#include "check.h"

#include "marker_spec.h"

static struct marker_spec spec;
static char error[600];

static bool parse(const char *text)
{
    memset(&spec, 0xa5, sizeof spec);
    error[0] = '\0';
    return marker_spec_parse(text, strlen(text), &spec, error, sizeof error);
}

static void test_three_forms(void)
{
    char described[700];
    REQUIRE(parse("handle_request"));
    CHECK_EQ(spec.form, SPEC_FUNCTION);
    CHECK(strcmp(spec.function, "handle_request") == 0);
    CHECK(!spec.done);
    marker_spec_describe(described, sizeof described, &spec);
    CHECK(strcmp(described, "handle_request") == 0);

    REQUIRE(parse("libsqlite3.so:sqlite3_exec"));
    CHECK_EQ(spec.form, SPEC_MODULE_FUNCTION);
    CHECK(strcmp(spec.module, "libsqlite3.so") == 0);
    CHECK(strcmp(spec.function, "sqlite3_exec") == 0);
    marker_spec_describe(described, sizeof described, &spec);
    CHECK(strcmp(described, "libsqlite3.so:sqlite3_exec") == 0);

    REQUIRE(parse("main+0x31b0"));
    CHECK_EQ(spec.form, SPEC_MODULE_OFFSET);
    CHECK(strcmp(spec.module, "main") == 0);
    CHECK_EQ(spec.offset, 0x31b0);
    marker_spec_describe(described, sizeof described, &spec);
    CHECK(strcmp(described, "main+0x31b0") == 0);

    /* Mangled C++ names, versioned-looking and local names. */
    CHECK(parse("_ZN3foo3barEv"));
    CHECK(parse("compile.part.0"));
    CHECK(parse("$helper"));
}

static void test_rejected(void)
{
    static const char *const bad[] = {
        "",           "1abc",        "foo bar",      "foo(int)",     ":func",        "module:",
        "main+",      "main+31b0",   "main+0x",      "main+0xzz",    "+0x10",        "main+0x10 ",
        "a::b",       "x:y:z",       "f\n",          "f-g",          "\xff",         "lib.so:1f",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECK_MSG(!parse(bad[i]), "'%s' accepted", bad[i]);
        CHECK_MSG(strncmp(error, "ARENASHIM_REGIONS:", 18) == 0, "'%s': error '%s'", bad[i], error);
    }
    /* A length, not a terminator, bounds the spec: the text after it is not looked at. */
    const char *list = "first,second";
    CHECK(marker_spec_parse(list, 5, &spec, error, sizeof error));
    CHECK(strcmp(spec.function, "first") == 0);
}

static void test_lengths(void)
{
    char text[MARKER_SPEC_TEXT_MAX + 8];
    /* The longest function name the record holds, and one byte more. */
    memset(text, 'f', sizeof spec.function - 1);
    text[sizeof spec.function - 1] = '\0';
    CHECK(parse(text));
    CHECK_EQ(strlen(spec.function), sizeof spec.function - 1);
    memset(text, 'f', sizeof spec.function);
    text[sizeof spec.function] = '\0';
    CHECK(!parse(text));
    CHECK(strstr(error, "longer than") != NULL);
    /* A module name too long, in both qualified forms. */
    memset(text, 'm', sizeof spec.module);
    strcpy(text + sizeof spec.module, ":f");
    CHECK(!parse(text));
    memset(text, 'm', sizeof spec.module);
    strcpy(text + sizeof spec.module, "+0x10");
    CHECK(!parse(text));
    /* A whole spec too long. */
    memset(text, 'f', MARKER_SPEC_TEXT_MAX);
    text[MARKER_SPEC_TEXT_MAX] = '\0';
    CHECK(!parse(text));
    /* The error is cut to its buffer, never overrun. */
    char small[16];
    memset(small, 'x', sizeof small);
    CHECK(!marker_spec_parse("1bad", 4, &spec, small, 8));
    CHECK(memchr(small, '\0', 8) != NULL);
    CHECK_EQ(small[8], 'x');
}

/* What tests/fuzz found (tests/fuzz/marker_spec/regressions). */
static void test_fuzz_regressions(void)
{
    char described[700];
    /* Offset 0 was described "main+0" ('%#lx' drops the 0x of a zero), which does not parse. */
    REQUIRE(parse("main+0x0"));
    CHECK_EQ(spec.offset, 0);
    marker_spec_describe(described, sizeof described, &spec);
    CHECK(strcmp(described, "main+0x0") == 0);
    CHECK(parse(described));
    /* OFF is hexadecimal digits only: strtoull also took blanks, a sign and a second 0x, and
     * turned an overflow into ULLONG_MAX. */
    static const char *const bad[] = { "main+0x-1", "main+0x \t1", "main+0x0x10", "main+0x+1",
                                       "main+0x10000000000000000", "main+0x1 ", "main+0X10" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECK_MSG(!parse(bad[i]), "'%s' accepted", bad[i]);
        CHECK(strncmp(error, "ARENASHIM_REGIONS:", 18) == 0);
    }
    REQUIRE(parse("main+0xffffffffffffffff"));
    CHECK_EQ(spec.offset, UINTPTR_MAX);
    REQUIRE(parse("main+0x000000000000000000001A"));
    CHECK_EQ(spec.offset, 0x1a);
    marker_spec_describe(described, sizeof described, &spec);
    CHECK(strcmp(described, "main+0x1a") == 0);
    /* A NUL inside text[0, len) is not the end of the spec. */
    CHECK(!marker_spec_parse("f\0junk", 6, &spec, error, sizeof error));
    /* The error quotes the spec on one line: control characters are shown as '?'. */
    static const char *const control[] = { "f\n", "f\x1b[2J", "m:\r", "m+0x1\n" };
    for (size_t i = 0; i < sizeof control / sizeof control[0]; i++) {
        CHECK(!parse(control[i]));
        for (const char *c = error; *c; c++)
            CHECK_MSG((unsigned char)*c >= 0x20 && *c != 0x7f, "control byte 0x%02x in '%s'", *c, error);
    }
}

static const struct test_case cases[] = {
    TEST_CASE(three_forms),
    TEST_CASE(rejected),
    TEST_CASE(lengths),
    TEST_CASE(fuzz_regressions),
};

int main(int argc, char **argv)
{
    return check_main(argc, argv, cases, sizeof cases / sizeof cases[0]);
}
