// Reads JSON documents, one per line, and prints for each the output of
// sigs.k8s.io/yaml.JSONToYAML as a JSON string (one per line), or {"error": ...}: the bytes the reference hashes
// into the instance ID (contracts §4.3). See README.md beside this file.
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"

	"sigs.k8s.io/yaml"
)

func main() {
	scanner := bufio.NewScanner(os.Stdin)
	scanner.Buffer(make([]byte, 1<<20), 1<<24)
	out := json.NewEncoder(os.Stdout)
	for scanner.Scan() {
		y, err := yaml.JSONToYAML(scanner.Bytes())
		var result interface{} = string(y)
		if err != nil {
			// yaml.v2 cannot read some Go JSON back (a raw NEL in a string, for one).
			result = map[string]string{"error": err.Error()}
		}
		if err := out.Encode(result); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
}
