// The console script (being written).
