int x_money;
