"""Reports: images, tables and pages made from results."""
