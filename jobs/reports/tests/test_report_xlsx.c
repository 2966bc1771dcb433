int x_report_xlsx;
