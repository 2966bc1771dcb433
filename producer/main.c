#include <stdio.h>
int main(void) { fputs("under construction\n", stderr); return 2; }
