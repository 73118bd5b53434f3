set terminal pngcairo size 900,600 font ",10" noenhanced
set grid
set key below
set output "phases.png"
set title "edgemig phases: facedetect-edgemig-5-1 (handoff 28.62 s, downtime 1.64 s)"
unset key
set xlabel "seconds since the request"
set ytics ("" 0)
set yrange [-1:4]
set xrange [0:31.018]
set arrow from 26.983, graph 0 to 26.983, graph 1 nohead dt 2 lc rgb "gray30"
set label "source_stopped" at 26.993, graph 0.97 rotate by 90 right font ",8"
set arrow from 27.376, graph 0 to 27.376, graph 1 nohead dt 2 lc rgb "gray30"
set label "checkpoint_done" at 27.386, graph 0.97 rotate by 90 right font ",8"
set arrow from 28.622, graph 0 to 28.622, graph 1 nohead dt 2 lc rgb "gray30"
set label "target_running" at 28.632, graph 0.97 rotate by 90 right font ",8"
set arrow from 28.720, graph 0 to 28.720, graph 1 nohead dt 2 lc rgb "gray30"
set label "source_cleaned" at 28.730, graph 0.97 rotate by 90 right font ",8"
plot "plots/phases.dat" u 3:1:3:4:($1-0.35):($1+0.35):ytic(2) w boxxyerror fs solid 0.6 lc rgb "#1a7f37", "plots/phases.dat" u 4:1:(sprintf(" %.2f MB", $5)) w labels left font ",8"
