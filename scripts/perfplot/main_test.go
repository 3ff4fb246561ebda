package main

import (
	"reflect"
	"testing"

	"gonum.org/v1/plot/plotter"
)

func TestMedians(t *testing.T) {
	got := medians(map[float64][]float64{1000: {30, 10, 500}, 250: {4}, 500: {8, 6}})
	want := plotter.XYs{{X: 250, Y: 4}, {X: 500, Y: 7}, {X: 1000, Y: 30}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("medians %v, want %v", got, want)
	}
}
