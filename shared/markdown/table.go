package markdown

import "strings"

// table renders an ADF table as a GitHub table. GitHub tables have no merged cells: a cell spanning columns or rows
// keeps its content in its top-left position and the positions it covered stay empty, so the grid keeps its shape
// and no text is lost or repeated. A GitHub table needs a header row: when the first ADF row is not all header
// cells, an empty header row is written. Block content in a cell is flattened to one line (see flat).
func (r *renderer) table(n Node, depth int) []string {
	var rows []Node
	for _, c := range n.Content {
		rows = append(rows, wrapRow(c))
	}
	if len(rows) == 0 {
		return nil
	}
	grid, width := r.tableGrid(rows, depth)
	if width == 0 {
		width = 1
	}
	header := make([]string, width)
	body := grid
	if firstRowIsHeader(rows[0]) {
		copy(header, grid[0])
		body = grid[1:]
	}
	out := []string{tableRow(header)}
	delim := make([]string, width)
	for i := range delim {
		delim[i] = "---"
	}
	out = append(out, tableRow(delim))
	for _, row := range body {
		cells := make([]string, width)
		copy(cells, row)
		out = append(out, tableRow(cells))
	}
	return out
}

// tableWidth returns the number of columns the Markdown table for an ADF table node has: the widest row once
// colspans and the cells covered by rowspans above are counted.
func tableWidth(n Node) int {
	var rows []Node
	for _, c := range n.Content {
		rows = append(rows, wrapRow(c))
	}
	_, w := (&renderer{}).tableGrid(rows, 0)
	if w == 0 && len(rows) > 0 {
		w = 1
	}
	return w
}

func (r *renderer) tableGrid(rows []Node, depth int) ([][]string, int) {
	grid := make([][]string, len(rows))
	covered := make([]map[int]bool, len(rows))
	for i := range covered {
		covered[i] = map[int]bool{}
	}
	width := 0
	for ri, row := range rows {
		col := 0
		for _, cell := range row.Content {
			for covered[ri][col] {
				col++
			}
			if col >= maxTableColumns {
				// Past the width limit: keep the text in the last column rather than drop it.
				last := maxTableColumns - 1
				grid[ri] = growTo(grid[ri], last+1)
				grid[ri][last] = joinCell(grid[ri][last], r.cell(cell, depth))
				continue
			}
			colspan := intAttr(cell.Attrs, "colspan", 1, 1, maxTableColumns)
			colspan = min(colspan, maxTableColumns-col)
			rowspan := intAttr(cell.Attrs, "rowspan", 1, 1, len(rows)-ri)
			grid[ri] = growTo(grid[ri], col+1)
			grid[ri][col] = r.cell(cell, depth)
			for dr := 0; dr < rowspan; dr++ {
				for dc := 0; dc < colspan; dc++ {
					covered[ri+dr][col+dc] = true
				}
			}
			col += colspan
			width = max(width, col)
		}
		for c := range covered[ri] {
			width = max(width, c+1)
		}
	}
	return grid, width
}

func growTo(s []string, n int) []string {
	for len(s) < n {
		s = append(s, "")
	}
	return s
}

func joinCell(a, b string) string {
	switch {
	case a == "":
		return b
	case b == "":
		return a
	}
	return a + " " + b
}

func firstRowIsHeader(row Node) bool {
	if len(row.Content) == 0 {
		return false
	}
	for _, c := range row.Content {
		if c.Type != "tableHeader" {
			return false
		}
	}
	return true
}

func (r *renderer) cell(n Node, depth int) string {
	var s string
	if n.Type == "tableCell" || n.Type == "tableHeader" {
		s = r.flatJoin(n.Content, depth+1, modeCell)
	} else {
		s = r.flatJoin([]Node{n}, depth+1, modeCell)
	}
	s = strings.ReplaceAll(s, "\n", " ")
	return escapeCellPipes(strings.TrimSpace(s))
}

func tableRow(cells []string) string {
	var b strings.Builder
	b.WriteByte('|')
	for _, c := range cells {
		b.WriteByte(' ')
		b.WriteString(c)
		if c != "" {
			b.WriteByte(' ')
		}
		b.WriteByte('|')
	}
	return b.String()
}
