// Dumps the Go encoding/json field order of corev1.Pod and every struct it reaches, as JSON:
// {"<Type>": [["<json name>", <omitempty>, "<type>"(, "<patchStrategy>", "<patchMergeKey>")], ...]}. The type grammar is
// s (string), i (integer), b (bool), f (float), @Name (struct), *X (pointer), []X, {}X (map by
// string), and !Name for types with their own MarshalJSON (Time, Quantity, IntOrString, ...).
// Run inside a Kubernetes source tree: see README.md beside this file.
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"reflect"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

var marshaler = reflect.TypeOf((*json.Marshaler)(nil)).Elem()
var table = map[string][][]interface{}{}

func desc(t reflect.Type) string {
	if t.Kind() == reflect.Ptr {
		return "*" + desc(t.Elem())
	}
	if t.Implements(marshaler) || reflect.PtrTo(t).Implements(marshaler) {
		return "!" + t.Name()
	}
	switch t.Kind() {
	case reflect.String:
		return "s"
	case reflect.Bool:
		return "b"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "i"
	case reflect.Float32, reflect.Float64:
		return "f"
	case reflect.Slice:
		return "[]" + desc(t.Elem())
	case reflect.Map:
		return "{}" + desc(t.Elem())
	case reflect.Struct:
		visit(t)
		return "@" + t.Name()
	case reflect.Interface:
		return "any"
	}
	panic(t.String())
}

func fields(t reflect.Type, out *[][]interface{}) {
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if tag == "-" || f.PkgPath != "" {
			continue
		}
		parts := strings.Split(tag, ",")
		name := parts[0]
		if f.Anonymous && name == "" {
			fields(f.Type, out)
			continue
		}
		if name == "" {
			name = f.Name
		}
		omit := false
		for _, p := range parts[1:] {
			if p == "omitempty" {
				omit = true
			}
		}
		entry := []interface{}{name, omit, desc(f.Type)}
		if strategy := f.Tag.Get("patchStrategy"); strategy != "" {
			entry = append(entry, strategy, f.Tag.Get("patchMergeKey"))
		}
		*out = append(*out, entry)
	}
}

func visit(t reflect.Type) {
	if _, seen := table[t.Name()]; seen {
		return
	}
	table[t.Name()] = nil
	var out [][]interface{}
	fields(t, &out)
	table[t.Name()] = out
}

func main() {
	visit(reflect.TypeOf(corev1.Pod{}))
	enc := json.NewEncoder(os.Stdout)
	if err := enc.Encode(table); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
