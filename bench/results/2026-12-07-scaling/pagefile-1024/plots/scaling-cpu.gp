set terminal pngcairo size 800,520 font ",10" noenhanced
set grid
set key top left
set logscale x 2
set xlabel "container memory, MiB"
set xrange [*:*]
set offsets graph 0.05, graph 0.05, 0, 0
set output "scaling-cpu.png"
set ylabel "CPU seconds per round"
set yrange [0:*]
plot '-' using 1:2 with linespoints lw 2 pt 7  title "source", '-' using 1:2 with linespoints lw 2 pt 7  title "target"
1024 4.21333
e
1024 2.397
e
