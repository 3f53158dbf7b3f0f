package gitwork

import (
	"bytes"
	"encoding/json"
	"errors"
)

// StripOutputs returns the notebook nb (nbformat 4 JSON) with every code
// cell's outputs emptied and execution count cleared, written the way
// Jupyter writes notebooks (keys sorted, one-space indent, a final
// newline), so that a stripped notebook saved again by Jupyter does not
// differ by its formatting.
func StripOutputs(nb []byte) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(nb))
	dec.UseNumber()
	var doc map[string]any
	if err := dec.Decode(&doc); err != nil {
		return nil, err
	}
	cells, ok := doc["cells"].([]any)
	if !ok {
		return nil, errors.New("no cells: not an nbformat 4 notebook")
	}
	for _, c := range cells {
		cell, ok := c.(map[string]any)
		if !ok || cell["cell_type"] != "code" {
			continue
		}
		cell["outputs"] = []any{}
		cell["execution_count"] = nil
	}
	var out bytes.Buffer
	enc := json.NewEncoder(&out)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", " ")
	if err := enc.Encode(doc); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}
