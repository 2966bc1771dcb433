/* Filled in with the diag family. */
int erpq__diag_placeholder;
