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
plot '-' using 1:2 with linespoints lw 2 pt 7  title "handoff", '-' using 1:2 with linespoints lw 2 pt 7  title "downtime", '-' using 1:2 with linespoints lw 2 pt 6 dt 2 title "before: handoff", '-' using 1:2 with linespoints lw 2 pt 6 dt 2 title "before: downtime"
256 5.866
1024 26.32
e
256 2.963
1024 9.148
e
256 19.652
1024 58.082
e
256 2.078
1024 17.71
e
