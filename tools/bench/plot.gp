# tools/bench/plot.gp — throughput by engine, grouped bars (one group per
# workload/clients cell, one bar per server), log scale: the servers differ
# by orders of magnitude between workloads.
# Called by tools/bench/engines.sh:
#   gnuplot -e "datafile='plot.dat'; outfile='x.png'; nservers=4; ymax=1e6" plot.gp
# datafile: a header line `cell "server 1" "server 2" ..`, then one line
# per cell `"family/clients" req/s req/s ..` (NaN for a missing value).
set terminal pngcairo size 1400,620 font ",10" noenhanced
set output outfile
set title "requests per second by server (higher is better; log scale)"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set logscale y
if (!exists("ymax")) ymax = 1e6
set yrange [100:ymax]
set format y "%.0s%c"
set ylabel "req/s"
set xlabel "workload / clients"
set xtics rotate by -35 scale 0
set grid ytics
set key outside right top vertical
set datafile missing "NaN"
plot for [i=2:nservers+1] datafile using i:xtic(1) title columnheader(i)
