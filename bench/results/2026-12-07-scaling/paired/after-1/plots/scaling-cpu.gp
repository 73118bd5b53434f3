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
plot '-' using 1:2 with linespoints lw 2 pt 7  title "source", '-' using 1:2 with linespoints lw 2 pt 7  title "target", '-' using 1:2 with linespoints lw 2 pt 6 dt 2 title "before: source", '-' using 1:2 with linespoints lw 2 pt 6 dt 2 title "before: target"
256 1.24065
1024 3.70347
e
256 0.5975
1024 2.783
e
256 1.9077
1024 4.64351
e
256 0.911
1024 3.9245
e
