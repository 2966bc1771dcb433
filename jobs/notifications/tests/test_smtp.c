#include <criterion/criterion.h>
Test(placeholder_smtp, x) {}
