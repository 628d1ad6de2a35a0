package eval

import (
	"math"
	"slices"
	"strings"

	"github.com/kdfir/kdfir/internal/kql/table"
)

// The series functions of anomaly detection: series_outliers (Tukey's
// fences), series_fir (a finite impulse response filter), series_decompose
// (seasonal, trend and residual) and series_decompose_anomalies (the
// outliers of the residual). Kusto documents what they compute but not
// every number; where it leaves a choice open, the choice is written
// here and fixed by golden tests (testdata/fn_series_anomalies and
// friends).

func registerAnomalyFuncs() {
	register("series_outliers", 1, 5, seriesOutliersBuilder)
	register("series_fir", 2, 4, seriesFIRBuilder)
	register("series_decompose", 1, 5, decomposeBuilder(false))
	register("series_decompose_anomalies", 1, 7, decomposeBuilder(true))
}

// constArg checks argument i, when it is a constant, with ok; a constant
// it rejects is an error at its position, and a computed one is checked
// on each row (the function then gives null for a bad value).
func constArg(cc *callCtx, i int, what string, ok func(v any) bool) error {
	if i < 0 || i >= len(cc.args) || !cc.args[i].isConst || cc.args[i].val == nil {
		return nil
	}
	if !ok(cc.args[i].val) {
		return cc.errorf(cc.args[i].pos, "%s: %s", cc.call.Name, what)
	}
	return nil
}

func isKind(v any) bool {
	s, ok := v.(string)
	return ok && (s == "tukey" || s == "ctukey")
}

func isPercentileBound(v any) bool {
	f, ok := toReal(v)
	_, isBool := v.(bool)
	return ok && !isBool && f >= 2 && f <= 98
}

func isTrend(v any) bool {
	s, ok := v.(string)
	return ok && (s == "avg" || s == "linefit" || s == "none")
}

func isWholeNumber(v any) bool {
	f, ok := toReal(v)
	_, isBool := v.(bool)
	return ok && !isBool && f == math.Trunc(f) && f >= -1
}

// argOr is args[i], or def when the call has no such argument or it is
// null.
func argOr(args []any, i int, def any) any {
	if i < len(args) && args[i] != nil {
		return args[i]
	}
	return def
}

// seriesOutliersBuilder is series_outliers(series [, kind [, ignore_val
// [, min_percentile [, max_percentile]]]]).
func seriesOutliersBuilder(cc *callCtx) (*cexpr, error) {
	if err := constArg(cc, 1, `kind must be "tukey" or "ctukey"`, isKind); err != nil {
		return nil, err
	}
	for i := 3; i <= 4; i++ {
		if err := constArg(cc, i, "a percentile bound must be a number from 2 to 98", isPercentileBound); err != nil {
			return nil, err
		}
	}
	return fN(table.Dynamic, func(args []any) any {
		xs, ok := args[0].([]any)
		if !ok {
			return nil
		}
		lo, hi, ok := outlierBounds(args)
		if !ok {
			return nil
		}
		vals := make([]float64, len(xs))
		valid := make([]bool, len(xs))
		ignore, hasIgnore := toReal(argOr(args, 2, nil))
		for i, v := range xs {
			vals[i], valid[i] = seriesNum(v)
			if hasIgnore && valid[i] && vals[i] == ignore {
				valid[i] = false
			}
		}
		scores := tukeyScores(vals, valid, len(vals), lo, hi)
		out := make([]any, len(scores))
		for i, s := range scores {
			out[i] = s
		}
		return out
	})(cc)
}

// outlierBounds reads the kind and percentiles of series_outliers: 25
// and 75 for tukey, min_percentile and max_percentile (10 and 90 by
// default) for ctukey.
func outlierBounds(args []any) (lo, hi float64, ok bool) {
	kind, _ := argOr(args, 1, "ctukey").(string)
	switch kind {
	case "tukey":
		return 25, 75, true
	case "ctukey":
	default:
		return 0, 0, false
	}
	lo, okLo := toReal(argOr(args, 3, float64(10)))
	hi, okHi := toReal(argOr(args, 4, float64(90)))
	if !okLo || !okHi || lo < 2 || hi > 98 || lo >= hi {
		return 0, 0, false
	}
	return lo, hi, true
}

// tukeyScores scores each valid value as Kusto's series_outliers does:
// with P_lo and P_hi the lo-th and hi-th percentiles (linear
// interpolation between the closest ranks) of the valid values among
// the first learn, a value above P_hi scores (x - P_hi) / (P_hi - P_lo)
// times tukeyScale(lo, hi), one below P_lo (x - P_lo) / (P_hi - P_lo)
// times the same, and one in between 0. The scale makes a score of 1.5
// mean what it means for Tukey's test (25th and 75th percentiles) on a
// normal distribution, whatever the percentiles; it is 1 for those.
// Where P_hi = P_lo (a series flat over most of its bins) the range is
// taken as 1, so that a point off the flat part still gets a finite
// score (kdfir's choice: Kusto does not document it). An invalid value
// scores 0.
func tukeyScores(vals []float64, valid []bool, learn int, lo, hi float64) []float64 {
	var sorted []float64
	for i := 0; i < learn && i < len(vals); i++ {
		if valid[i] {
			sorted = append(sorted, vals[i])
		}
	}
	out := make([]float64, len(vals))
	if len(sorted) == 0 {
		return out
	}
	slices.Sort(sorted)
	q1, q3 := interpPercentile(sorted, lo), interpPercentile(sorted, hi)
	iqr := q3 - q1
	if iqr == 0 {
		iqr = 1
	}
	scale := tukeyScale(lo, hi)
	for i, v := range vals {
		switch {
		case !valid[i]:
		case v > q3:
			out[i] = (v - q3) / iqr * scale
		case v < q1:
			out[i] = (v - q1) / iqr * scale
		}
	}
	return out
}

// tukeyScale is the factor by which series_outliers multiplies a
// score measured in lo-th to hi-th percentile ranges. On a normal
// distribution whose quantiles are z(p), Tukey's fence for a mild
// outlier lies at z(0.75) + 1.5 (z(0.75) - z(0.25)) = 2.7; the factor
// makes that point score 1.5 in the wider range as well:
//
//	1.5 (z(hi) - z(lo)) / (2.7 - z(hi))
//
// This is how a Kusto developer explained the score
// (https://stackoverflow.com/questions/75264555, January 2023, and
// https://github.com/microsoft/Kusto-Query-Language/issues/136), and
// with the quantiles Kusto uses it reproduces, to the last digit,
// the scores printed there for the default 10th and 90th percentiles
// (a factor of 2.772605605507915). Those quantiles are not the exact
// normal ones: Kusto takes z(0.75) = 0.675 and z(0.9) = 1.29682082 (the
// exact z(0.9) is 1.2816, which would give 2.7144). kdfir uses Kusto's
// values at 10, 25, 75 and 90 and the exact normal quantile at the other
// percentiles, for which no Kusto output is published.
func tukeyScale(lo, hi float64) float64 {
	if lo == 25 && hi == 75 {
		return 1
	}
	zl, zh := normalQuantile(lo/100), normalQuantile(hi/100)
	return 1.5 * (zh - zl) / (2.7 - zh)
}

// normalQuantile is z(p) of the standard normal distribution, with the
// values Kusto's series_outliers uses at 0.1, 0.25, 0.75 and 0.9 (see
// tukeyScale).
func normalQuantile(p float64) float64 {
	switch p {
	case 0.1:
		return -1.29682082
	case 0.25:
		return -0.675
	case 0.75:
		return 0.675
	case 0.9:
		return 1.29682082
	}
	return math.Sqrt2 * math.Erfinv(2*p-1)
}

// interpPercentile is the p-th percentile of sorted values, interpolated
// linearly between the two closest ranks.
func interpPercentile(sorted []float64, p float64) float64 {
	pos := p / 100 * float64(len(sorted)-1)
	i := int(math.Floor(pos))
	if i >= len(sorted)-1 {
		return sorted[len(sorted)-1]
	}
	return sorted[i] + (pos-float64(i))*(sorted[i+1]-sorted[i])
}

// seriesFIRBuilder is series_fir(series, filter [, normalize [, center]]):
// out[i] = sum over k of filter[k] * series[i-k], points before the
// series' start (and nulls) counting as 0. normalize divides by the
// sum of the coefficients; by default it is true unless a coefficient
// is negative, and true with a negative coefficient (or a zero sum) gives
// null. center moves the output back by (len(filter)-1)/2 bins, so that
// a moving average stays in line with the series.
func seriesFIRBuilder(cc *callCtx) (*cexpr, error) {
	return fN(table.Dynamic, func(args []any) any {
		xs, ok := args[0].([]any)
		fs, okF := args[1].([]any)
		if !ok || !okF || len(fs) == 0 {
			return nil
		}
		coef := make([]float64, len(fs))
		negative := false
		sum := 0.0
		for i, v := range fs {
			f, ok := seriesNum(v)
			if !ok {
				return nil
			}
			coef[i] = f
			sum += f
			negative = negative || f < 0
		}
		normalize := !negative
		if v := argOr(args, 2, nil); v != nil {
			b, ok := v.(bool)
			if !ok {
				return nil
			}
			normalize = b
		}
		center := false
		if v := argOr(args, 3, nil); v != nil {
			b, ok := v.(bool)
			if !ok {
				return nil
			}
			center = b
		}
		scale := 1.0
		if normalize {
			if negative || sum == 0 {
				return nil
			}
			scale = sum
		}
		shift := 0
		if center {
			shift = (len(coef) - 1) / 2
		}
		at := func(i int) float64 {
			if i < 0 || i >= len(xs) {
				return 0
			}
			f, _ := seriesNum(xs[i])
			return f
		}
		out := make([]any, len(xs))
		for i := range xs {
			y := 0.0
			for k, c := range coef {
				y += c * at(i+shift-k)
			}
			out[i] = y / scale
		}
		return out
	})(cc)
}

// decomposeBuilder is series_decompose(series [, seasonality [, trend [,
// test_points [, seasonality_threshold]]]]) and, with anomalies,
// series_decompose_anomalies(series [, threshold [, seasonality [, trend
// [, test_points [, ad_method [, seasonality_threshold]]]]]]). Both give a
// bag of arrays (see syntax.MultiOutput for their names).
func decomposeBuilder(anomalies bool) builder {
	// The positions of the arguments after the series.
	seasonality, trend, testPoints, method, threshold := 1, 2, 3, -1, 4
	if anomalies {
		seasonality, trend, testPoints, method, threshold = 2, 3, 4, 5, 6
	}
	return func(cc *callCtx) (*cexpr, error) {
		checks := []struct {
			i    int
			what string
			ok   func(any) bool
		}{
			{seasonality, "seasonality must be -1 (detect), 0 (none) or a number of bins", isWholeNumber},
			{trend, `trend must be "avg", "linefit" or "none"`, isTrend},
			{testPoints, "test_points must be a number of bins", func(v any) bool { f, ok := toReal(v); return ok && f >= 0 && f == math.Trunc(f) }},
			{threshold, "seasonality_threshold must be a number", func(v any) bool { _, ok := toReal(v); return ok }},
			{method, `ad_method must be "tukey" or "ctukey"`, isKind},
		}
		if anomalies {
			checks = append(checks, struct {
				i    int
				what string
				ok   func(any) bool
			}{1, "threshold must be a positive number", func(v any) bool { f, ok := toReal(v); return ok && f > 0 }})
		}
		for _, c := range checks {
			if err := constArg(cc, c.i, c.what, c.ok); err != nil {
				return nil, err
			}
		}
		return fN(table.Dynamic, func(args []any) any {
			xs, ok := args[0].([]any)
			if !ok {
				return nil
			}
			period, okP := toReal(argOr(args, seasonality, int64(-1)))
			trendKind, okT := argOr(args, trend, "avg").(string)
			tp, okTP := toReal(argOr(args, testPoints, int64(0)))
			minScore, okS := toReal(argOr(args, threshold, 0.6))
			if !okP || !okT || !okTP || !okS || !isTrend(trendKind) || period < -1 || tp < 0 {
				return nil
			}
			vals := make([]float64, len(xs))
			for i, v := range xs {
				vals[i], _ = seriesNum(v) // a null counts as 0
			}
			learn := len(vals) - int(tp)
			if learn < 0 {
				learn = 0
			}
			d := decompose(vals, learn, int(period), trendKind, minScore)
			if !anomalies {
				return map[string]any{
					"baseline": reals(d.baseline), "seasonal": reals(d.seasonal),
					"trend": reals(d.trend), "residual": reals(d.residual),
				}
			}
			k, okK := toReal(argOr(args, 1, 1.5))
			kind, _ := argOr(args, method, "ctukey").(string)
			lo, hi, okB := outlierBounds([]any{nil, kind})
			if !okK || !okB || k <= 0 {
				return nil
			}
			valid := make([]bool, len(vals))
			for i := range valid {
				valid[i] = true
			}
			scores := tukeyScores(d.residual, valid, learn, lo, hi)
			flags := make([]any, len(scores))
			for i, s := range scores {
				switch {
				case s > k:
					flags[i] = int64(1)
				case s < -k:
					flags[i] = int64(-1)
				default:
					flags[i] = int64(0)
				}
			}
			return map[string]any{"ad_flag": flags, "ad_score": reals(scores), "baseline": reals(d.baseline)}
		})(cc)
	}
}

func reals(fs []float64) []any {
	out := make([]any, len(fs))
	for i, f := range fs {
		out[i] = f
	}
	return out
}

type decomposition struct {
	baseline, seasonal, trend, residual []float64
}

// decompose splits vals as Kusto's series_decompose does, learning from
// the first learn points: the seasonal part is, for each phase of the
// period, the median of the points at that phase (none when the period
// is 0, or -1 and no period is detected); the trend is fitted to the
// series less its seasonal part: its average (avg), its least-squares
// line (linefit) or nothing (none); the baseline is seasonal + trend and
// the residual the series less the baseline.
func decompose(vals []float64, learn, period int, trendKind string, minScore float64) decomposition {
	n := len(vals)
	d := decomposition{baseline: make([]float64, n), seasonal: make([]float64, n), trend: make([]float64, n), residual: make([]float64, n)}
	if period < 0 {
		period = detectPeriod(vals[:learn], minScore)
	}
	if period > 0 && learn > 0 {
		phases := make([][]float64, period)
		for i := 0; i < learn; i++ {
			phases[i%period] = append(phases[i%period], vals[i])
		}
		med := make([]float64, period)
		for p, vs := range phases {
			if len(vs) > 0 {
				slices.Sort(vs)
				med[p] = (vs[(len(vs)-1)/2] + vs[len(vs)/2]) / 2
			}
		}
		for i := range vals {
			d.seasonal[i] = med[i%period]
		}
	}
	if learn > 0 {
		switch strings.ToLower(trendKind) {
		case "avg":
			sum := 0.0
			for i := 0; i < learn; i++ {
				sum += vals[i] - d.seasonal[i]
			}
			for i := range d.trend {
				d.trend[i] = sum / float64(learn)
			}
		case "linefit":
			a, b := lineFit(vals[:learn], d.seasonal[:learn])
			for i := range d.trend {
				d.trend[i] = a + b*float64(i)
			}
		}
	}
	for i, v := range vals {
		d.baseline[i] = d.seasonal[i] + d.trend[i]
		d.residual[i] = v - d.baseline[i]
	}
	return d
}

// lineFit is the least-squares line a + b*i through vals less seasonal.
func lineFit(vals, seasonal []float64) (a, b float64) {
	n := float64(len(vals))
	var sx, sy, sxx, sxy float64
	for i, v := range vals {
		x, y := float64(i), v-seasonal[i]
		sx += x
		sy += y
		sxx += x * x
		sxy += x * y
	}
	den := n*sxx - sx*sx
	if den == 0 {
		return sy / n, 0
	}
	b = (n*sxy - sx*sy) / den
	return (sy - b*sx) / n, b
}

// maxDetectedPeriod bounds the periods detectPeriod tries (a week of
// 10-minute bins is 1008), so that its work stays linear in the series.
const maxDetectedPeriod = 1024

// detectPeriod finds the seasonal period of vals, as
// series_periods_detect does for series_decompose: the period from 3
// bins to half the series (at most maxDetectedPeriod) whose autocorrelation (of the series less its
// mean) is highest, when that score reaches minScore; else 0. The values
// are first clipped to their 10th and 90th percentiles, so that the spike
// an analyst looks for does not hide the period. Kusto does not document
// its scoring; this one is 1 for a series that repeats exactly and falls
// towards 0 as the repetition fades.
func detectPeriod(raw []float64, minScore float64) int {
	n := len(raw)
	if n < 8 {
		return 0
	}
	sorted := slices.Clone(raw)
	slices.Sort(sorted)
	lo, hi := interpPercentile(sorted, 10), interpPercentile(sorted, 90)
	vals := make([]float64, n)
	for i, v := range raw {
		vals[i] = min(max(v, lo), hi)
	}
	mean := 0.0
	for _, v := range vals {
		mean += v
	}
	mean /= float64(n)
	var total float64
	for _, v := range vals {
		total += (v - mean) * (v - mean)
	}
	if total == 0 {
		return 0
	}
	best, bestScore := 0, 0.0
	for p := 3; p <= min(n/2, maxDetectedPeriod); p++ {
		var c float64
		for i := p; i < n; i++ {
			c += (vals[i] - mean) * (vals[i-p] - mean)
		}
		// Scaled by the number of pairs, so long lags are not penalized.
		score := c / total * float64(n) / float64(n-p)
		// A multiple of the period found so far repeats it too: it
		// wins only when it is clearly better.
		margin := 1e-9
		if best > 0 && p%best == 0 {
			margin = 0.01
		}
		if best == 0 && score >= minScore || best > 0 && score > bestScore+margin {
			best, bestScore = p, score
		}
	}
	return best
}
