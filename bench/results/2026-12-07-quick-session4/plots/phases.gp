set terminal pngcairo size 900,600 font ",10" noenhanced
set grid
set key below
set output "phases.png"
set title "edgemig phases: facedetect-edgemig-5-1 (handoff 26.40 s, downtime 1.69 s)"
unset key
set xlabel "seconds since the request"
set ytics ("" 0)
set yrange [-1:4]
set xrange [0:28.765]
set arrow from 24.710, graph 0 to 24.710, graph 1 nohead dt 2 lc rgb "gray30"
set label "source_stopped" at 24.720, graph 0.97 rotate by 90 right font ",8"
set arrow from 25.415, graph 0 to 25.415, graph 1 nohead dt 2 lc rgb "gray30"
set label "checkpoint_done" at 25.425, graph 0.97 rotate by 90 right font ",8"
set arrow from 26.400, graph 0 to 26.400, graph 1 nohead dt 2 lc rgb "gray30"
set label "target_running" at 26.410, graph 0.97 rotate by 90 right font ",8"
set arrow from 26.634, graph 0 to 26.634, graph 1 nohead dt 2 lc rgb "gray30"
set label "source_cleaned" at 26.644, graph 0.97 rotate by 90 right font ",8"
plot "plots/phases.dat" u 3:1:3:4:($1-0.35):($1+0.35):ytic(2) w boxxyerror fs solid 0.6 lc rgb "#1a7f37", "plots/phases.dat" u 4:1:(sprintf(" %.2f MB", $5)) w labels left font ",8"
