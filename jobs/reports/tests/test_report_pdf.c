int x_report_pdf;
