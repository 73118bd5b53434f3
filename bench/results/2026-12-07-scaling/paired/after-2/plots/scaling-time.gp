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
256 6.045
1024 29.249
e
256 4.152
1024 5.733
e
256 60.418
1024 21.535
e
256 3.043
1024 7.667
e
