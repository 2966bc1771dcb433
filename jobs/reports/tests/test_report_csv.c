int x_report_csv;
