// Golden vectors from the real Kubernetes libraries for fma's Python ports. Reads JSON
// documents, one per line, and prints one JSON string per line (or {"error": ...}):
//
//	podgold pod   <- a Pod as JSON: json.Marshal after json.Unmarshal into corev1.Pod
//	podgold smp   <- {"original": Pod, "patch": object}: strategicpatch.StrategicMergePatch
//
// Run inside a Kubernetes source tree's vendor directory (GOPATH mode): see README.md.
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/strategicpatch"
)

type smpCase struct {
	Original json.RawMessage `json:"original"`
	Patch    json.RawMessage `json:"patch"`
}

func one(mode string, line []byte) (string, error) {
	switch mode {
	case "pod":
		var pod corev1.Pod
		if err := json.Unmarshal(line, &pod); err != nil {
			return "", err
		}
		out, err := json.Marshal(&pod)
		return string(out), err
	case "smp":
		var c smpCase
		if err := json.Unmarshal(line, &c); err != nil {
			return "", err
		}
		out, err := strategicpatch.StrategicMergePatch(c.Original, c.Patch, corev1.Pod{})
		return string(out), err
	}
	return "", fmt.Errorf("unknown mode %q", mode)
}

func main() {
	scanner := bufio.NewScanner(os.Stdin)
	scanner.Buffer(make([]byte, 1<<20), 1<<24)
	enc := json.NewEncoder(os.Stdout)
	enc.SetEscapeHTML(false)
	for scanner.Scan() {
		out, err := one(os.Args[1], scanner.Bytes())
		var result interface{} = out
		if err != nil {
			result = map[string]string{"error": err.Error()}
		}
		if err := enc.Encode(result); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
}
