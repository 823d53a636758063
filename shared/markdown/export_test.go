package markdown

// TableWidth lets the structure tests compare a rendered table's column count with the ADF's.
var TableWidth = tableWidth
