package broker

import (
	"bytes"
	"os"
)

func writeFile4K(path string) error {
	return os.WriteFile(path, bytes.Repeat([]byte("x"), 4096), 0o644)
}
