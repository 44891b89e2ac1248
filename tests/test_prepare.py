"""common.prepare on small hand-written samples of each official annotation format."""
import json
import os

import pytest

from common.data import read_list
from common.prepare import main


def touch(path):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    open(path, "wb").close()


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


def lines(dest, split):
    with open(os.path.join(dest, f"{split}.txt")) as f:
        return f.read().splitlines()


def classes(dest):
    with open(os.path.join(dest, "classes.txt")) as f:
        return f.read().splitlines()


def test_ucf101(tmp_path):
    src, dest = tmp_path / "src", str(tmp_path / "out")
    write(src / "ucfTrainTestlist/classInd.txt", "1 ApplyEyeMakeup\n2 Archery\n")
    write(src / "ucfTrainTestlist/trainlist01.txt",
          "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1\nArchery/v_Archery_g08_c01.avi 2\nArchery/v_gone.avi 2\n")
    write(src / "ucfTrainTestlist/testlist01.txt", "Archery/v_Archery_g01_c01.avi\n")   # no label in test lists
    for rel in ("ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi", "Archery/v_Archery_g08_c01.avi",
                "Archery/v_Archery_g01_c01.avi"):
        touch(src / "UCF-101" / rel)
    report = main(["ucf101", str(src), dest])
    assert classes(dest) == ["ApplyEyeMakeup", "Archery"]                 # 1-based classInd -> 0-based
    assert report["train"] == (2, [str(src / "UCF-101/Archery/v_gone.avi")])
    assert lines(dest, "val") == ["../src/UCF-101/Archery/v_Archery_g01_c01.avi 1"]
    assert [r.label for r in read_list(os.path.join(dest, "train.txt"), dest, 2)] == [0, 1]


def test_hmdb51(tmp_path):
    src, dest = tmp_path / "src", str(tmp_path / "out")
    write(src / "splits/brush_hair_test_split1.txt", "a.avi 1\nb.avi 2\nc.avi 0\n")
    write(src / "splits/cartwheel_test_split1.txt", "d.avi 2\n")
    for rel in ("brush_hair/a.avi", "brush_hair/b.avi", "brush_hair/c.avi", "cartwheel/d.avi"):
        touch(src / "videos" / rel)
    main(["hmdb51", str(src), dest])
    assert classes(dest) == ["brush_hair", "cartwheel"]
    assert lines(dest, "train") == ["../src/videos/brush_hair/a.avi 0"]
    assert lines(dest, "val") == ["../src/videos/brush_hair/b.avi 0", "../src/videos/cartwheel/d.avi 1"]


def test_ssv2(tmp_path):
    src, dest = tmp_path / "src", str(tmp_path / "out")
    write(src / "labels/something-something-v2-labels.json",
          json.dumps({"Pulling something from left to right": "0", "Pushing something with something": "1"}))
    write(src / "labels/something-something-v2-train.json", json.dumps([
        {"id": "11", "label": "pulling a pen from left to right", "template": "Pulling [something] from left to right",
         "placeholders": ["a pen"]},
        {"id": "12", "label": "x", "template": "Pushing [something] with [something]", "placeholders": []}]))
    write(src / "labels/something-something-v2-validation.json", json.dumps([
        {"id": "13", "label": "x", "template": "Pushing [something] with [something]", "placeholders": []}]))
    for vid in ("11", "12", "13"):
        touch(src / "20bn-something-something-v2" / f"{vid}.webm")
    main(["ssv2", str(src), dest])
    assert classes(dest) == ["Pulling something from left to right", "Pushing something with something"]
    assert [line.split()[-1] for line in lines(dest, "train")] == ["0", "1"]   # template brackets removed
    assert lines(dest, "val")[0].endswith("13.webm 1")


def test_ssv1_frame_folders(tmp_path):
    src, dest = tmp_path / "src", str(tmp_path / "out")
    write(src / "something-something-v1-labels.csv", "Holding something\nPutting something on a surface\n")
    write(src / "something-something-v1-train.csv", "100;Putting something on a surface\n")
    write(src / "something-something-v1-validation.csv", "101;Holding something\n")
    for vid, n in (("100", 3), ("101", 2)):
        for i in range(1, n + 1):
            touch(src / "20bn-something-something-v1" / vid / f"{i:05d}.jpg")
    main(["ssv1", str(src), dest])
    assert lines(dest, "train") == ["../src/20bn-something-something-v1/100 3 1"]   # RELPATH NUM_FRAMES LABEL
    assert lines(dest, "val") == ["../src/20bn-something-something-v1/101 2 0"]


def test_kinetics400(tmp_path):
    src, dest = tmp_path / "src", str(tmp_path / "out")
    write(src / "annotations/train.csv", "label,youtube_id,time_start,time_end,split\n"
          "abseiling,abc,10,20,train\nplaying guitar,def,0,10,train\n")
    write(src / "annotations/validate.csv", "label,youtube_id,time_start,time_end,split\nabseiling,ghi,5,15,val\n")
    touch(src / "train/abseiling/abc_000010_000020.mp4")
    touch(src / "train/playing guitar/def_000000_000010.mp4")
    touch(src / "val/ghi_000005_000015.mp4")
    main(["kinetics400", str(src), dest])
    assert classes(dest) == ["abseiling", "playing guitar"]
    recs = read_list(os.path.join(dest, "train.txt"), dest, 2)
    assert recs[1].path.endswith("playing guitar/def_000000_000010.mp4") and recs[1].label == 1  # spaces in paths
    assert lines(dest, "val") == ["../src/val/ghi_000005_000015.mp4 0"]


def test_diving48(tmp_path):
    src, dest = tmp_path / "src", str(tmp_path / "out")
    write(src / "Diving48_vocab.json", json.dumps([["Back", "15som", "05Twis", "FREE"], ["Forward", "25som", "NoTwis", "PIKE"]]))
    write(src / "Diving48_V2_train.json", json.dumps([{"vid_name": "v1", "label": 1, "start_frame": 0, "end_frame": 80}]))
    write(src / "Diving48_V2_test.json", json.dumps([{"vid_name": "v2", "label": 0, "start_frame": 0, "end_frame": 60}]))
    touch(src / "rgb/v1.mp4")
    touch(src / "rgb/v2.mp4")
    main(["diving48", str(src), dest])
    assert classes(dest)[0] == "Back 15som 05Twis FREE"
    assert lines(dest, "train") == ["../src/rgb/v1.mp4 1"] and lines(dest, "val") == ["../src/rgb/v2.mp4 0"]


def test_charades_multi_label(tmp_path):
    src, dest = tmp_path / "src", str(tmp_path / "out")
    write(src / "Charades/Charades_v1_classes.txt", "c000 Holding some clothes\nc001 Putting clothes somewhere\n"
          "c002 Taking some clothes from somewhere\n")
    header = "id,subject,scene,quality,relevance,verified,script,objects,descriptions,actions,length\n"
    write(src / "Charades/Charades_v1_train.csv", header + 'AAA,s,Kitchen,6,7,Yes,x,y,z,"c002 1.0 5.0;c000 2.0 3.0",30\n'
          "BBB,s,Kitchen,6,7,Yes,x,y,z,,30\n")                               # no actions: left out
    write(src / "Charades/Charades_v1_test.csv", header + 'CCC,s,Kitchen,6,7,Yes,x,y,z,"c001 0.0 4.0",30\n')
    for vid in ("AAA", "BBB", "CCC"):
        touch(src / "Charades_v1_480" / f"{vid}.mp4")
    main(["charades", str(src), dest])
    assert lines(dest, "train") == ["../src/Charades_v1_480/AAA.mp4 0,2"]
    assert read_list(os.path.join(dest, "train.txt"), dest, 3, multi_label=True)[0].label == (0, 2)
    assert lines(dest, "val") == ["../src/Charades_v1_480/CCC.mp4 1"]


def test_missing_annotations_exit(tmp_path):
    with pytest.raises(SystemExit, match="classInd.txt not found"):
        main(["ucf101", str(tmp_path), str(tmp_path / "out")])
