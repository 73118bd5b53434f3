set terminal pngcairo size 800,520 font ",10" noenhanced
set grid
set key top left
set logscale x 2
set xlabel "container memory, MiB"
set xrange [*:*]
set offsets graph 0.05, graph 0.05, 0, 0
set output "scaling-bytes.png"
set ylabel "bytes on the wire / floor"
set yrange [0:*]
plot '-' using 1:2 with linespoints lw 2 pt 7  title "all", '-' using 1:2 with linespoints lw 2 pt 7  title "before the handoff"
1024 1.75328
e
1024 1.11562
e
