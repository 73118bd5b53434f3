set terminal pngcairo size 800,520 font ",10" noenhanced
set grid
set key top left
set logscale x 2
set xlabel "container memory, MiB"
set xrange [*:*]
set offsets graph 0.05, graph 0.05, 0, 0
set output "scaling-time.png"
set ylabel "seconds"
set yrange [0:*]
plot '-' using 1:2 with linespoints lw 2 pt 7  title "handoff", '-' using 1:2 with linespoints lw 2 pt 7  title "downtime"
1024 16.122
e
1024 3.839
e
