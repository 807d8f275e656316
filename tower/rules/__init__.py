"""Rules engine: state rules on each event batch, absence rules on scheduled scans."""
