#include <criterion/criterion.h>
Test(placeholder_sms, x) {}
