package main

import (
	"bufio"
	"fmt"
	"io"
	"log"
	"os"
	"strconv"
	"strings"
)

func readAllLimited(r io.Reader, max int64) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("answer larger than %d bytes", max)
	}
	return b, nil
}

// parseMicroFile reads `go test -bench` output.
func parseMicroFile(path string) []MicroResult {
	f, err := os.Open(path)
	if err != nil {
		log.Printf("micro-benchmarks: %v", err)
		return nil
	}
	defer f.Close()
	return parseMicro(f)
}

// parseMicro parses the benchmark lines of `go test -bench` output: a
// "pkg:" line names the package of the lines that follow, and each
// "BenchmarkName-P  iterations  value unit  value unit ..." line is one
// result.
func parseMicro(r io.Reader) []MicroResult {
	var out []MicroResult
	pkg := ""
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if p, ok := strings.CutPrefix(line, "pkg:"); ok {
			pkg = strings.TrimSpace(p)
			continue
		}
		if !strings.HasPrefix(line, "Benchmark") {
			continue
		}
		f := strings.Fields(line)
		if len(f) < 4 || len(f)%2 != 0 {
			continue
		}
		iters, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil {
			continue
		}
		m := MicroResult{Package: pkg, Name: f[0], Iters: iters, Metrics: map[string]float64{}}
		ok := true
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				ok = false
				break
			}
			m.Metrics[f[i+1]] = v
			m.Units = append(m.Units, f[i+1])
		}
		if ok {
			out = append(out, m)
		}
	}
	return out
}
