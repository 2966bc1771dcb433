int fixture_x;
