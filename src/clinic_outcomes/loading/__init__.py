"""Loading: find the export drops, read every new file, type and check each row, merge into raw.*."""
