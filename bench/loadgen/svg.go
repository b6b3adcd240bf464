package main

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"time"
)

// svgDoc is a minimal SVG writer: just what the two panels need.
type svgDoc struct {
	b    strings.Builder
	w, h float64
}

func newSVG(w, h float64) *svgDoc {
	d := &svgDoc{w: w, h: h}
	fmt.Fprintf(&d.b, `<?xml version="1.0" encoding="UTF-8"?>`+"\n")
	fmt.Fprintf(&d.b, `<svg xmlns="http://www.w3.org/2000/svg" width="%s" height="%s" viewBox="0 0 %s %s" font-family="DejaVu Sans, Helvetica, Arial, sans-serif">`+"\n",
		f1(w), f1(h), f1(w), f1(h))
	d.rect(0, 0, w, h, `fill="#ffffff"`)
	return d
}

func (d *svgDoc) String() string { return d.b.String() + "</svg>\n" }

func f1(x float64) string {
	s := fmt.Sprintf("%.1f", x)
	return strings.TrimSuffix(s, ".0")
}

func esc(s string) string {
	var buf bytes.Buffer
	_ = xml.EscapeText(&buf, []byte(s))
	return buf.String()
}

func (d *svgDoc) rect(x, y, w, h float64, attrs string) {
	fmt.Fprintf(&d.b, `<rect x="%s" y="%s" width="%s" height="%s" %s/>`+"\n", f1(x), f1(y), f1(w), f1(h), attrs)
}

func (d *svgDoc) line(x1, y1, x2, y2 float64, attrs string) {
	fmt.Fprintf(&d.b, `<line x1="%s" y1="%s" x2="%s" y2="%s" %s/>`+"\n", f1(x1), f1(y1), f1(x2), f1(y2), attrs)
}

func (d *svgDoc) circle(x, y, r float64, attrs string) {
	fmt.Fprintf(&d.b, `<circle cx="%s" cy="%s" r="%s" %s/>`+"\n", f1(x), f1(y), f1(r), attrs)
}

func (d *svgDoc) polyline(pts [][2]float64, attrs string) {
	var s []string
	for _, p := range pts {
		s = append(s, f1(p[0])+","+f1(p[1]))
	}
	fmt.Fprintf(&d.b, `<polyline points="%s" fill="none" %s/>`+"\n", strings.Join(s, " "), attrs)
}

// text writes s at (x, y); anchor is start, middle or end.
func (d *svgDoc) text(x, y float64, s, anchor string, size float64, attrs string) {
	fmt.Fprintf(&d.b, `<text x="%s" y="%s" text-anchor="%s" font-size="%s" %s>%s</text>`+"\n",
		f1(x), f1(y), anchor, f1(size), attrs, esc(s))
}

// halo keeps a label readable over lines and bars.
const halo = ` paint-order="stroke" stroke="#ffffff" stroke-width="3" stroke-linejoin="round"`

const (
	colCreds  = "#2b6cb0"
	colToken  = "#dd6b20"
	colPlugin = "#4a5568"
	colRef    = "#a0aec0"
	colTarget = "#c53030"
	colGrid   = "#e2e8f0"
	colAxis   = "#2d3748"
)

// renderSVG draws BENCHMARKS.svg: issuance rates (bars) and end/revoke
// time against count (log-log).
func renderSVG(r *Results) string {
	const W, H = 1240.0, 890.0
	d := newSVG(W, H)
	title := "vault-plugin-secrets-agent benchmarks"
	sub := fmt.Sprintf("%s · %d cores · Vault %s · single-node raft · %d concurrent requests",
		r.Env.Date, r.Env.NProc, r.Env.VaultVersion, r.Run.Concurrency)
	d.text(W/2, 26, title, "middle", 18, `font-weight="bold" fill="#1a202c"`)
	d.text(W/2, 46, sub, "middle", 12, `fill="#4a5568"`)
	drawRates(d, r, 20, 70, 700, 380)
	drawLatency(d, r, 740, 70, 480, 380)
	d.line(20, 466, W-20, 466, `stroke="`+colGrid+`" stroke-width="1"`)
	drawPropagation(d, r, 20, 490, 780, 380)
	drawKillBytes(d, r, 820, 490, 400, 380)
	return d.String()
}

// Colours of the kill → refusal methods.
const (
	colPoll  = colToken
	colBlock = colCreds
	colSSF   = "#2f855a"
)

func propColour(method string) string {
	switch method {
	case propPoll:
		return colPoll
	case propBlocking:
		return colBlock
	}
	return colSSF
}

// drawPropagation draws kill → refusal: for each N, the three methods side
// by side, each a pale p50 bar and a full p99 bar, on a log time axis.
func drawPropagation(d *svgDoc, r *Results, x0, y0, w, h float64) {
	d.text(x0+w/2, y0+4, "Kill → resource servers refuse: p50 and p99", "middle", 14, `font-weight="bold" fill="#1a202c"`)
	left, right, top, bottom := x0+62, x0+w-10, y0+40, y0+h-48
	x := r.Propagation
	if x == nil || len(x.Rows) == 0 {
		d.text(x0+w/2, y0+h/2, "kill → refusal not measured", "middle", 13, `fill="#718096"`)
		return
	}
	methods := []string{propPoll, propBlocking, propSSF}
	var ns []int
	minY, maxY := targetRefusalP99Ms, targetRefusalP99Ms
	for _, row := range x.Rows {
		if !slices.Contains(ns, row.N) {
			ns = append(ns, row.N)
		}
		if row.NotMeasured == "" && len(row.SamplesMs) > 0 {
			minY, maxY = math.Min(minY, math.Max(row.P50ms, 0.1)), math.Max(maxY, row.P99ms)
		}
	}
	slices.Sort(ns)
	// Whole decades, with room below the fastest bar and above the slowest
	// for its labels.
	ly0, ly1 := math.Floor(math.Log10(minY)-0.3), math.Ceil(math.Log10(maxY)+0.35)
	ys := func(v float64) float64 {
		v = math.Max(v, math.Pow(10, ly0))
		return bottom - (bottom-top)*(math.Log10(v)-ly0)/(ly1-ly0)
	}
	for e := ly0; e <= ly1; e++ {
		y := ys(math.Pow(10, e))
		d.line(left, y, right, y, `stroke="`+colGrid+`" stroke-width="1"`)
		d.text(left-6, y+4, timeLabel(math.Pow(10, e)), "end", 11, `fill="#4a5568"`)
		for m := 2.0; m < 10 && e < ly1; m++ {
			ym := ys(m * math.Pow(10, e))
			d.line(left, ym, left+4, ym, `stroke="`+colAxis+`" stroke-width="0.8"`)
		}
	}
	d.line(left, top, left, bottom, `stroke="`+colAxis+`" stroke-width="1"`)
	d.line(left, bottom, right, bottom, `stroke="`+colAxis+`" stroke-width="1"`)
	d.text(x0+10, (top+bottom)/2, "kill → refusal (log)", "middle", 11, fmt.Sprintf(`fill="#4a5568" transform="rotate(-90 %s %s)"`, f1(x0+10), f1((top+bottom)/2)))

	group := (right - left) / float64(len(ns))
	slot := group * 0.84 / float64(len(methods))
	bw := math.Min(26, slot*0.4)
	for gi, n := range ns {
		gx := left + group*float64(gi) + group*0.08
		label := fmt.Sprintf("%d resource servers", n)
		if n == 1 {
			label = "1 resource server"
		}
		d.text(left+group*(float64(gi)+0.5), bottom+18, label, "middle", 11.5, `fill="#1a202c"`)
		for mi, m := range methods {
			cx := gx + slot*(float64(mi)+0.5)
			col := propColour(m)
			var row *PropagationRow
			for i := range x.Rows {
				if x.Rows[i].Method == m && x.Rows[i].N == n {
					row = &x.Rows[i]
				}
			}
			if row == nil || row.NotMeasured != "" || len(row.SamplesMs) == 0 {
				d.text(cx, bottom-8, "not", "middle", 9.5, `fill="#718096"`)
				d.text(cx, bottom-20, "measured", "middle", 9.5, `fill="#718096"`)
				continue
			}
			y50, y99 := ys(row.P50ms), ys(row.P99ms)
			d.rect(cx-bw-1, y50, bw, bottom-y50, `fill="`+col+`" fill-opacity="0.4"`)
			d.rect(cx+1, y99, bw, bottom-y99, `fill="`+col+`"`)
			// Both values above the pair: p99 on top, p50 under it.
			ytop := math.Min(y50, y99)
			d.text(cx, ytop-4, "p50 "+timeLabelPrecise(row.P50ms), "middle", 9, `fill="`+col+`"`+halo)
			d.text(cx, ytop-15, "p99 "+timeLabelPrecise(row.P99ms), "middle", 9.5, `font-weight="bold" fill="`+col+`"`+halo)
		}
	}
	yt := ys(targetRefusalP99Ms)
	d.line(left, yt, right, yt, `stroke="`+colTarget+`" stroke-width="1.5" stroke-dasharray="6,4"`)

	// Legend.
	lx, ly := x0+20, y0+24
	for _, m := range methods {
		d.rect(lx, ly-9, 10, 10, `fill="`+propColour(m)+`"`)
		d.text(lx+14, ly, propLabel(m), "start", 11, `fill="#1a202c"`)
		lx += 140
	}
	d.line(lx, ly-4, lx+26, ly-4, `stroke="`+colTarget+`" stroke-width="1.5" stroke-dasharray="6,4"`)
	d.text(lx+32, ly, fmt.Sprintf("target: p99 ≤ %.0f ms (b, c)", targetRefusalP99Ms), "start", 11, `fill="`+colTarget+`"`)
	d.text(right, bottom+34, fmt.Sprintf("pale: p50; full: p99 (nearest rank over %d kills × N resource servers); (a) polls every %.0f s", x.Rounds, x.PollS), "end", 9.5, `fill="#718096"`)
}

// drawKillBytes draws the bytes a verifier fetches per kill: polling the
// whole list vs deltas, at each kill rate.
func drawKillBytes(d *svgDoc, r *Results, x0, y0, w, h float64) {
	d.text(x0+w/2, y0+4, "Bytes a verifier fetches per kill", "middle", 14, `font-weight="bold" fill="#1a202c"`)
	left, right, top, bottom := x0+58, x0+w-10, y0+40, y0+h-48
	x := r.Propagation
	if x == nil || len(x.Bytes) == 0 {
		d.text(x0+w/2, y0+h/2, "bytes per kill not measured", "middle", 13, `fill="#718096"`)
		return
	}
	poll := time.Duration(x.PollS * float64(time.Second))
	per := bytesPerEntry(x.Bytes)
	// extrapolated: polling at the whole list, when the fill fell short.
	extrapolated := func(b KillBytes) float64 {
		if !b.underFilled() || per <= 0 {
			return 0
		}
		return pollBytesPerKill(b.FullWire+int(per*float64(b.ListTarget-b.ListEntries)), poll, b.KillsPerMin)
	}
	maxV := 0.0
	for _, b := range x.Bytes {
		maxV = math.Max(maxV, math.Max(pollBytesPerKill(b.FullWire, poll, b.KillsPerMin), float64(b.DeltaWire)))
		maxV = math.Max(maxV, extrapolated(b))
	}
	top2, step := niceScale(maxV * 1.12)
	ys := func(v float64) float64 { return bottom - (bottom-top)*v/top2 }
	for v := 0.0; v <= top2+step/2; v += step {
		y := ys(v)
		d.line(left, y, right, y, `stroke="`+colGrid+`" stroke-width="1"`)
		d.text(left-6, y+4, num(v), "end", 11, `fill="#4a5568"`)
	}
	d.line(left, top, left, bottom, `stroke="`+colAxis+`" stroke-width="1"`)
	d.line(left, bottom, right, bottom, `stroke="`+colAxis+`" stroke-width="1"`)
	d.text(x0+10, (top+bottom)/2, "bytes per kill", "middle", 11, fmt.Sprintf(`fill="#4a5568" transform="rotate(-90 %s %s)"`, f1(x0+10), f1((top+bottom)/2)))
	group := (right - left) / float64(len(x.Bytes))
	bw := math.Min(48, group*0.3)
	for i, b := range x.Bytes {
		cx := left + group*(float64(i)+0.5)
		if e := extrapolated(b); e > 0 {
			// The polling bar the whole list would give: an outline.
			bx, y := cx-bw-2, ys(e)
			d.rect(bx, y, bw, bottom-y, `fill="none" stroke="`+colPoll+`" stroke-width="1.2" stroke-dasharray="4,3"`)
			d.text(bx+bw/2, y-5, "≈"+num(e)+" B", "middle", 10, `fill="`+colPoll+`"`+halo)
			d.text(bx+bw/2, y-17, "whole list:", "middle", 9, `fill="`+colPoll+`"`+halo)
		}
		for j, bar := range []struct {
			v   float64
			col string
		}{{pollBytesPerKill(b.FullWire, poll, b.KillsPerMin), colPoll}, {float64(b.DeltaWire), colBlock}} {
			bx := cx - bw - 2 + float64(j)*(bw+4)
			y := ys(bar.v)
			d.rect(bx, y, bw, bottom-y, `fill="`+bar.col+`"`)
			d.text(bx+bw/2, y-5, num(bar.v)+" B", "middle", 11, `font-weight="bold" fill="`+bar.col+`"`+halo)
		}
		d.text(cx, bottom+16, num(float64(b.KillsPerMin))+" kills/min", "middle", 11, `fill="#1a202c"`)
		held := "list of " + num(float64(b.ListEntries))
		if b.underFilled() {
			held += " of " + num(float64(b.ListTarget))
		}
		d.text(cx, bottom+30, held, "middle", 9.5, `fill="#718096"`)
	}
	lx, ly := x0+20, y0+24
	d.rect(lx, ly-9, 10, 10, `fill="`+colPoll+`"`)
	d.text(lx+14, ly, "whole list every "+durLabel(x.PollS), "start", 11, `fill="#1a202c"`)
	d.rect(lx+170, ly-9, 10, 10, `fill="`+colBlock+`"`)
	d.text(lx+184, ly, "deltas (blocking query)", "start", 11, `fill="#1a202c"`)
}

// shortLabels name the bars.
var shortLabels = map[string][2]string{
	"creds":        {"credential", "agent/creds"},
	"creds-nd":     {"credential", "no def. policy"},
	"token":        {"token create", "as root"},
	"token-agent":  {"token create", "ordinary token"},
	"jwks":         {"jwks read", "no token"},
	"session-read": {"session read", "as the agent"},
	"kv":           {"kv-v2 write", "reference"},
	"lookup":       {"lookup-self", "reference"},
}

// displayOrder puts the issuance rows first, then the two token-create
// rows they are compared with, then the plugin's cheapest requests, then
// Vault's own references.
func displayOrder(rs []RateResult) []RateResult {
	rank := map[string]int{"creds": 0, "creds-nd": 1, "token": 2, "token-agent": 3, "jwks": 4, "session-read": 5, "kv": 6, "lookup": 7}
	out := append([]RateResult(nil), rs...)
	sort.SliceStable(out, func(i, j int) bool {
		ri, ok := rank[out[i].Name]
		if !ok {
			ri = 99
		}
		rj, ok := rank[out[j].Name]
		if !ok {
			rj = 99
		}
		return ri < rj
	})
	return out
}

func barColour(name string) string {
	switch name {
	case "creds", "creds-nd":
		return colCreds
	case "token", "token-agent":
		return colToken
	case "jwks", "session-read":
		return colPlugin
	}
	return colRef
}

func drawRates(d *svgDoc, r *Results, x0, y0, w, h float64) {
	d.text(x0+w/2, y0+4, "Requests per second", "middle", 14, `font-weight="bold" fill="#1a202c"`)
	left, right, top, bottom := x0+58, x0+w-10, y0+40, y0+h-48
	if len(r.Rates) == 0 {
		d.text(x0+w/2, y0+h/2, "throughput not measured", "middle", 13, `fill="#718096"`)
		return
	}
	maxV := 0.0
	for _, x := range r.Rates {
		maxV = math.Max(maxV, x.PerSec)
	}
	target := -1.0
	if t := r.rate("token"); t != nil {
		target = targetIssuanceFactor * t.PerSec
		maxV = math.Max(maxV, target)
	}
	top2, step := niceScale(maxV * 1.08)
	ys := func(v float64) float64 { return bottom - (bottom-top)*v/top2 }

	// Grid and y axis.
	for v := 0.0; v <= top2+step/2; v += step {
		y := ys(v)
		d.line(left, y, right, y, `stroke="`+colGrid+`" stroke-width="1"`)
		d.text(left-6, y+4, num(v), "end", 11, `fill="#4a5568"`)
	}
	d.line(left, top, left, bottom, `stroke="`+colAxis+`" stroke-width="1"`)
	d.line(left, bottom, right, bottom, `stroke="`+colAxis+`" stroke-width="1"`)
	d.text(x0+12, (top+bottom)/2, "requests / s", "middle", 11, fmt.Sprintf(`fill="#4a5568" transform="rotate(-90 %s %s)"`, f1(x0+12), f1((top+bottom)/2)))

	rates := displayOrder(r.Rates)
	n := float64(len(rates))
	slot := (right - left) / n
	bw := math.Min(64, slot*0.62)
	for i, x := range rates {
		cx := left + slot*(float64(i)+0.5)
		y := ys(x.PerSec)
		d.rect(cx-bw/2, y, bw, bottom-y, `fill="`+barColour(x.Name)+`"`)
		d.text(cx, y-5, num(x.PerSec), "middle", 12, `font-weight="bold" fill="#1a202c"`+halo)
		lab, ok := shortLabels[x.Name]
		if !ok {
			lab = [2]string{x.Label, ""}
		}
		d.text(cx, bottom+16, lab[0], "middle", 11, `fill="#1a202c"`)
		d.text(cx, bottom+30, lab[1], "middle", 9.5, `fill="#718096"`)
	}
	if target > 0 {
		y := ys(target)
		d.line(left, y, right, y, `stroke="`+colTarget+`" stroke-width="1.5" stroke-dasharray="6,4"`)
		// Its label sits in a legend row above the plot, clear of the bars.
		lx, ly := x0+w/2-110, y0+24
		d.line(lx, ly-4, lx+26, ly-4, `stroke="`+colTarget+`" stroke-width="1.5" stroke-dasharray="6,4"`)
		d.text(lx+32, ly, fmt.Sprintf("target: 3 × token create as root = %s/s", num(target)), "start", 11, `fill="`+colTarget+`"`)
	}
}

func drawLatency(d *svgDoc, r *Results, x0, y0, w, h float64) {
	d.text(x0+w/2, y0+4, "Time to end a session vs revoke a token tree", "middle", 14, `font-weight="bold" fill="#1a202c"`)
	left, right, top, bottom := x0+62, x0+w-14, y0+40, y0+h-48
	type pt struct{ x, y, lo, hi float64 }
	var ends, revs []pt
	for _, e := range r.Ends {
		p := pt{x: float64(e.N), y: e.MedianMs, lo: e.MedianMs, hi: e.MedianMs}
		for _, s := range e.SamplesMs {
			p.lo, p.hi = math.Min(p.lo, s), math.Max(p.hi, s)
		}
		ends = append(ends, p)
	}
	for _, x := range r.Revokes {
		revs = append(revs, pt{x: float64(x.Children), y: x.Ms, lo: x.Ms, hi: x.Ms})
	}
	if len(ends)+len(revs) == 0 {
		d.text(x0+w/2, y0+h/2, "end and revoke times not measured", "middle", 13, `fill="#718096"`)
		return
	}
	minX, maxX, minY, maxY := math.Inf(1), math.Inf(-1), targetEndMs, targetEndMs
	for _, p := range append(append([]pt(nil), ends...), revs...) {
		minX, maxX = math.Min(minX, p.x), math.Max(maxX, p.x)
		if p.lo > 0 {
			minY, maxY = math.Min(minY, p.lo), math.Max(maxY, p.hi)
		}
	}
	// Some room left and right of the outermost points.
	lx0, lx1 := math.Log10(minX)-0.35, math.Log10(maxX)+0.35
	// Whole decades, with some room above and below the outermost times.
	ly0, ly1 := math.Floor(math.Log10(minY)-0.2), math.Ceil(math.Log10(maxY)+0.15)
	if ly1 <= ly0 {
		ly1 = ly0 + 1
	}
	xs := func(v float64) float64 { return left + (right-left)*(math.Log10(v)-lx0)/(lx1-lx0) }
	ys := func(v float64) float64 {
		if v <= 0 {
			v = math.Pow(10, ly0)
		}
		return bottom - (bottom-top)*(math.Log10(v)-ly0)/(ly1-ly0)
	}

	// Grid: decades, with minor ticks.
	for e := math.Floor(lx0); e <= lx1; e++ {
		for m := 1.0; m < 10; m++ {
			v := m * math.Pow(10, e)
			if math.Log10(v) < lx0 || math.Log10(v) > lx1 {
				continue
			}
			x := xs(v)
			if m == 1 {
				d.line(x, top, x, bottom, `stroke="`+colGrid+`" stroke-width="1"`)
				d.text(x, bottom+16, countLabel(v), "middle", 11, `fill="#4a5568"`)
			} else {
				d.line(x, bottom, x, bottom-4, `stroke="`+colAxis+`" stroke-width="0.8"`)
			}
		}
	}
	for e := ly0; e <= ly1; e++ {
		y := ys(math.Pow(10, e))
		d.line(left, y, right, y, `stroke="`+colGrid+`" stroke-width="1"`)
		d.text(left-6, y+4, timeLabel(math.Pow(10, e)), "end", 11, `fill="#4a5568"`)
		for m := 2.0; m < 10 && e < ly1; m++ {
			ym := ys(m * math.Pow(10, e))
			d.line(left, ym, left+4, ym, `stroke="`+colAxis+`" stroke-width="0.8"`)
		}
	}
	d.line(left, top, left, bottom, `stroke="`+colAxis+`" stroke-width="1"`)
	d.line(left, bottom, right, bottom, `stroke="`+colAxis+`" stroke-width="1"`)
	d.text((left+right)/2, bottom+34, "credentials in the session / child tokens of the token (log)", "middle", 11, `fill="#4a5568"`)
	d.text(x0+10, (top+bottom)/2, "time (log)", "middle", 11, fmt.Sprintf(`fill="#4a5568" transform="rotate(-90 %s %s)"`, f1(x0+10), f1((top+bottom)/2)))

	// Target: 20 ms.
	yt := ys(targetEndMs)
	d.line(left, yt, right, yt, `stroke="`+colTarget+`" stroke-width="1.5" stroke-dasharray="6,4"`)

	series := func(ps []pt, col string, square bool, labelBelow bool) {
		var line [][2]float64
		for _, p := range ps {
			line = append(line, [2]float64{xs(p.x), ys(p.y)})
		}
		if len(line) > 1 {
			d.polyline(line, `stroke="`+col+`" stroke-width="2"`)
		}
		for _, p := range ps {
			x, y := xs(p.x), ys(p.y)
			if p.hi > p.lo {
				// The spread of the samples: a whisker from the fastest to the slowest.
				d.line(x, ys(p.lo), x, ys(p.hi), `stroke="`+col+`" stroke-width="1.2"`)
				d.line(x-4, ys(p.lo), x+4, ys(p.lo), `stroke="`+col+`" stroke-width="1.2"`)
				d.line(x-4, ys(p.hi), x+4, ys(p.hi), `stroke="`+col+`" stroke-width="1.2"`)
			}
			if square {
				d.rect(x-4.5, y-4.5, 9, 9, `fill="`+col+`"`)
			} else {
				d.circle(x, y, 5, `fill="`+col+`"`)
			}
			dy := ys(p.hi) - y - 9
			if labelBelow {
				dy = ys(p.lo) - y + 17
			}
			anchor := "middle"
			if x > right-30 {
				anchor = "end"
			} else if x < left+30 {
				anchor = "start"
			}
			d.text(x, y+dy, timeLabelPrecise(p.y), anchor, 11, `font-weight="bold" fill="`+col+`"`+halo)
		}
	}
	series(revs, colToken, true, false)
	series(ends, colCreds, false, false)

	// Legend: a row between the title and the plot.
	lx, ly := x0+30, y0+24
	d.circle(lx+5, ly-4, 5, `fill="`+colCreds+`"`)
	d.text(lx+15, ly, "end a session", "start", 11, `fill="#1a202c"`)
	lx += 105
	d.rect(lx+0.5, ly-8.5, 9, 9, `fill="`+colToken+`"`)
	d.text(lx+15, ly, "revoke-tree of a token", "start", 11, `fill="#1a202c"`)
	lx += 150
	d.line(lx, ly-4, lx+26, ly-4, `stroke="`+colTarget+`" stroke-width="1.5" stroke-dasharray="6,4"`)
	d.text(lx+32, ly, "target: end ≤ 20 ms", "start", 11, `fill="`+colTarget+`"`)
	d.text(right, bottom-6, "dots: median; whiskers: fastest to slowest session", "end", 9.5, `fill="#718096"`+halo)
}

// niceScale returns an axis maximum ≥ v and a tick step (1, 2 or 5 × 10^k,
// about five ticks).
func niceScale(v float64) (float64, float64) {
	if v <= 0 {
		return 1, 0.2
	}
	raw := v / 5
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	step := mag
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		if m*mag >= raw {
			step = m * mag
			break
		}
	}
	return math.Ceil(v/step) * step, step
}

func countLabel(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%gM", v/1e6)
	case v >= 1e3:
		return fmt.Sprintf("%gk", v/1e3)
	}
	return fmt.Sprintf("%g", v)
}

func timeLabel(ms float64) string {
	if ms >= 1000 {
		return fmt.Sprintf("%g s", ms/1000)
	}
	return fmt.Sprintf("%g ms", ms)
}

func timeLabelPrecise(ms float64) string {
	switch {
	case ms >= 1000:
		return fmt.Sprintf("%.2f s", ms/1000)
	case ms >= 100:
		return fmt.Sprintf("%.0f ms", ms)
	}
	return fmt.Sprintf("%.1f ms", ms)
}
