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
256 1.37092
1024 3.77505
e
256 0.6665
1024 2.9295
e
256 5.31943
1024 4.24126
e
256 1.71333
1024 3.703
e
