/* Filled in with the worker. */
int erpq__worker_placeholder;
